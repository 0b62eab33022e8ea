// Runs the MQL5 library (Include/Suho/Protocol.mqh, compiled by g++ through mql5.h) against
// the golden vectors, in both directions.
//
//   vectors_test VECTORS.txt     check every vector; exit 0 when all pass
//
// VECTORS.txt is the line form of tests/vectors/*.json that
// `python -m tests.unit.protocol.c_fixture` writes for the C codec's driver (the JSON stays the
// one source); the lines are described in clients/c/suho_test.c, plus
//
//   E name type_code error offset nfields field=value...   fields an encoder must refuse
//
// The output's last line is "<n> valid, <n> invalid, <n> encode, <n> frame, <n> stream
// vectors: <n> failed".
#include "mql5.h"
#include "terminal.h"

#include <Suho/Protocol.mqh>

#include <fstream>
#include <iostream>
#include <sstream>

static int failures = 0;
static std::string current;

static void fail(const std::string &what)
{
    failures++;
    std::cerr << "FAIL " << current << ": " << what << "\n";
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static mql_array<uchar> unhex(const std::string &hex)
{
    mql_array<uchar> out;
    if (hex == "-")
        return out;
    ArrayResize(out, (int)(hex.size() / 2));
    for (size_t i = 0; i < hex.size() / 2; i++)
        out[(long)i] = (uchar)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
    return out;
}

static std::vector<std::string> tokens(const std::string &line)
{
    std::istringstream in(line);
    std::vector<std::string> out;
    std::string t;
    while (in >> t)
        out.push_back(t);
    return out;
}

// Parse "field=value" of `layout` into rec; false if it is not understood.
static bool parse_value(int layout, const std::string &token, SSuhoRecord &rec)
{
    size_t eq = token.find('=');
    if (eq == std::string::npos || token.size() < eq + 3 || token[eq + 2] != ':')
        return false;
    int index = SuhoFieldIndex(layout, string(token.substr(0, eq).c_str()));
    if (index < 0)
        return false;
    const SSuhoField &f = g_suho_fields[g_suho_layouts[layout].first_field + index];
    std::string val = token.substr(eq + 3);
    switch (token[eq + 1]) {
    case 'i':
        rec.u[index] = (f.kind == SUHO_KIND_I32 || f.kind == SUHO_KIND_I64)
                           ? (ulong)std::strtoll(val.c_str(), nullptr, 10)
                           : (ulong)std::strtoull(val.c_str(), nullptr, 10);
        return true;
    case 'b':
        rec.u[index] = val == "1";
        return true;
    case 'e':
        return SuhoEnumValueNamed(layout, index, string(val.c_str()), rec.u[index]);
    case 't': {
        mql_array<uchar> bytes = unhex(val.empty() ? "-" : val);
        std::string utf8(bytes.v.begin(), bytes.v.end());
        rec.text[index] = mql_string::from_utf8(utf8);
        return true;
    }
    case 'u': {
        mql_array<uchar> bytes = unhex(val);
        if (ArraySize(bytes) != 16)
            return false;
        SuhoSetUuid(rec, index, bytes);
        return true;
    }
    }
    return false;
}

// Read "nfields field=value..." (from position `at` of `t`) into rec.
static bool read_fields(int layout, const std::vector<std::string> &t, size_t at, SSuhoRecord &rec)
{
    SuhoRecordInit(rec, g_suho_layouts[layout].type);
    if (at >= t.size())
        return false;
    int n = std::atoi(t[at].c_str());
    if (n != g_suho_layouts[layout].nfields || t.size() != at + 1 + (size_t)n)
        return false;
    for (int i = 0; i < n; i++)
        if (!parse_value(layout, t[at + 1 + (size_t)i], rec))
            return false;
    return true;
}

static void compare(const SSuhoRecord &got, const SSuhoRecord &want)
{
    if (got.layout != want.layout) {
        fail("message type differs");
        return;
    }
    for (int i = 0; i < g_suho_layouts[want.layout].nfields; i++) {
        const SSuhoField &f = g_suho_fields[g_suho_layouts[want.layout].first_field + i];
        bool same = true;
        if (f.kind == SUHO_KIND_UUID) {
            for (int k = 0; k < 16; k++)
                same = same && got.id[i * 16 + k] == want.id[i * 16 + k];
        } else if (f.kind == SUHO_KIND_TEXT) {
            same = got.text[i] == want.text[i];
        } else {
            same = got.u[i] == want.u[i];
        }
        if (!same)
            fail("field differs: " + f.name.utf8());
    }
}

static void check_error(int status, int offset, const std::string &error, long want_offset)
{
    if (error == "-") {
        if (status != SUHO_OK)
            fail("unexpected error " + SuhoStatusName(status).utf8());
        return;
    }
    if (status == SUHO_OK || SuhoStatusName(status).utf8() != error)
        fail("wrong error " + SuhoStatusName(status).utf8() + ", expected " + error);
    else if (offset != want_offset)
        fail("wrong offset " + std::to_string(offset) + " for " + error + ", expected " +
             std::to_string(want_offset));
}

// Break one field of a valid record at a time: the encoder must refuse it with the error and
// offset the decoder would give (encoders validate, docs/protocol.md section 1).
static void encoder_refuses(const SSuhoRecord &good)
{
    int layout = good.layout;
    mql_array<uchar> out;
    for (int i = 0; i < g_suho_layouts[layout].nfields; i++) {
        const SSuhoField &f = g_suho_fields[g_suho_layouts[layout].first_field + i];
        SSuhoRecord bad = good;
        int want = SUHO_FIELD_RANGE, at = f.offset, err = 0;
        if (f.kind == SUHO_KIND_TEXT) {
            want = SUHO_INVALID_SYMBOL;
            bad.text[i] = _S("A\x7F");  // DEL is not printable
            at = f.offset + 1;
        } else if (f.kind == SUHO_KIND_ENUM) {
            ulong v = 0;
            for (bool member = true; member; v++) { // the smallest value that is no member
                member = false;
                for (int k = 0; k < f.enum_count; k++)
                    member = member || (ulong)g_suho_enum_value[f.enum_first + k] == v;
            }
            bad.u[i] = v - 1;
        } else if (f.kind == SUHO_KIND_BOOL) {
            bad.u[i] = 2;
        } else if (f.checked && (f.kind == SUHO_KIND_I32 || f.kind == SUHO_KIND_I64)) {
            bad.u[i] = (ulong)(f.max_i < LONG_MAX ? f.max_i + 1 : f.min_i - 1);
        } else if (f.checked) {
            bad.u[i] = f.max_u < ULONG_MAX ? f.max_u + 1 : f.min_u - 1;
        } else {
            continue; // any value is valid
        }
        if (SuhoEncode(bad, out, 0, err) != want || err != at)
            fail("encoder accepts a broken field: " + f.name.utf8());
    }
}

static void valid_vector(const std::vector<std::string> &t)
{
    // V name decode_only type_code hex nfields ...
    bool decode_only = t[2] == "1";
    int layout = SuhoLayoutOf(std::atoi(t[3].c_str()));
    mql_array<uchar> packet = unhex(t[4]);
    SSuhoRecord want, got;
    int err = 0;
    if (layout < 0 || !read_fields(layout, t, 5, want)) {
        fail("cannot read the vector");
        return;
    }
    int status = SuhoDecode(packet, 0, ArraySize(packet), got, err);
    if (status != SUHO_OK) {
        fail("decode fails: " + SuhoStatusName(status).utf8());
        return;
    }
    compare(got, want);
    if (decode_only)
        return;
    mql_array<uchar> out;
    status = SuhoEncode(want, out, 0, err);
    if (status != SUHO_OK)
        fail("encode fails: " + SuhoStatusName(status).utf8());
    else if (ArraySize(out) != ArraySize(packet) || out.v != packet.v)
        fail("encodes to other bytes");
    // at another position of a bigger buffer, too
    mql_array<uchar> big;
    ArrayResize(big, 3 * SUHO_PACKET_SIZE);
    ArrayInitialize(big, 0xA5);
    if (SuhoEncode(want, big, 144, err) != SUHO_OK ||
        !std::equal(packet.v.begin(), packet.v.end(), big.v.begin() + 144) || big[0] != 0xA5 ||
        big[288] != 0xA5)
        fail("encodes to other bytes at an offset");
    encoder_refuses(want);
}

static void invalid_vector(const std::vector<std::string> &t)
{
    // I name hex error offset
    mql_array<uchar> packet = unhex(t[2]);
    SSuhoRecord rec;
    int err = 0;
    int status = SuhoDecode(packet, 0, ArraySize(packet), rec, err);
    check_error(status, err, t[3], std::atol(t[4].c_str()));
}

static void encode_vector(const std::vector<std::string> &t)
{
    // E name type_code error offset nfields field=value...
    int type = std::atoi(t[2].c_str());
    int layout = SuhoLayoutOf(type);
    SSuhoRecord rec;
    if (layout >= 0 && !read_fields(layout, t, 5, rec)) {
        fail("cannot read the vector");
        return;
    }
    if (layout < 0)
        SuhoRecordInit(rec, type);
    mql_array<uchar> out;
    int err = 0;
    int status = SuhoEncode(rec, out, 0, err);
    check_error(status, err, t[3], std::atol(t[4].c_str()));
}

static bool record_line(std::istream &in, SSuhoRecord &rec)
{
    std::string line;
    if (!std::getline(in, line))
        return false;
    std::vector<std::string> t = tokens(line);
    if (t.size() < 3 || t[0] != "R")
        return false;
    int layout = SuhoLayoutNamed(string(t[1].c_str()));
    return layout >= 0 && read_fields(layout, t, 2, rec);
}

static void frame_vector(const std::vector<std::string> &t, std::istream &in)
{
    // F name hex nrecords error offset
    mql_array<uchar> frame = unhex(t[2]);
    size_t n = (size_t)std::atol(t[3].c_str());
    mql_array<SSuhoRecord> records;
    int count = 0, err = 0;
    int status = SuhoDecodeFrame(frame, 0, ArraySize(frame), records, count, err);
    check_error(status, err, t[4], std::atol(t[5].c_str()));
    if ((size_t)count != n)
        fail("wrong number of records");
    for (size_t i = 0; i < n; i++) {
        SSuhoRecord want;
        if (!record_line(in, want))
            fail("cannot read a record");
        else if ((int)i < count)
            compare(records[(long)i], want);
    }
}

static void stream_vector(const std::vector<std::string> &t, std::istream &in)
{
    // S name close pending nchunks chunk... nrecords nskips
    bool close = t[2] == "1";
    long pending = std::atol(t[3].c_str());
    size_t nchunks = (size_t)std::atol(t[4].c_str());
    CSuhoStream stream;
    std::vector<SSuhoRecord> got;
    for (size_t i = 0; i < nchunks; i++) {
        mql_array<uchar> chunk = unhex(t[5 + i]);
        stream.Feed(chunk, 0, ArraySize(chunk));
        SSuhoRecord rec;
        while (stream.Next(rec))
            got.push_back(rec);
    }
    if (close)
        stream.Close();
    size_t nrecords = (size_t)std::atol(t[5 + nchunks].c_str());
    size_t nskips = (size_t)std::atol(t[6 + nchunks].c_str());
    if (got.size() != nrecords)
        fail("wrong number of records");
    for (size_t i = 0; i < nrecords; i++) {
        SSuhoRecord want;
        if (!record_line(in, want))
            fail("cannot read a record");
        else if (i < got.size())
            compare(got[i], want);
    }
    if ((size_t)ArraySize(stream.skips) != nskips)
        fail("wrong number of skips");
    ulong total = 0;
    for (size_t i = 0; i < nskips; i++) {
        std::string line;
        std::getline(in, line);
        std::vector<std::string> k = tokens(line);
        if (k.size() != 3 || k[0] != "K") {
            fail("cannot read a skip");
            continue;
        }
        ulong offset = std::strtoull(k[1].c_str(), nullptr, 10);
        ulong length = std::strtoull(k[2].c_str(), nullptr, 10);
        total += length;
        if (i < (size_t)ArraySize(stream.skips) &&
            (stream.skips[(long)i].offset != offset || stream.skips[(long)i].length != length))
            fail("skip differs");
    }
    if (stream.skipped_bytes != total)
        fail("wrong skipped byte count");
    if (stream.Pending() != pending)
        fail("wrong pending byte count");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        std::cerr << "usage: vectors_test VECTORS.txt\n";
        return 2;
    }
    std::ifstream in(argv[1]);
    if (!in) {
        std::cerr << "cannot read " << argv[1] << "\n";
        return 2;
    }
    SuhoInit();
    // The CRC's check value (docs/protocol.md, section 2).
    mql_array<uchar> check;
    StringToCharArray(_S("123456789"), check, 0, 9, CP_UTF8);
    if (SuhoCrc32(check, 0, 9) != 0xCBF43926) {
        std::cerr << "FAIL crc32(\"123456789\") is not 0xCBF43926\n";
        return 1;
    }
    int counts[5] = {0, 0, 0, 0, 0};
    std::string line;
    while (std::getline(in, line)) {
        std::vector<std::string> t = tokens(line);
        if (t.empty())
            continue;
        current = t.size() > 1 ? t[1] : "?";
        const std::string &tag = t[0];
        if (tag == "V") {
            valid_vector(t);
            counts[0]++;
        } else if (tag == "I") {
            invalid_vector(t);
            counts[1]++;
        } else if (tag == "E") {
            encode_vector(t);
            counts[2]++;
        } else if (tag == "F") {
            frame_vector(t, in);
            counts[3]++;
        } else if (tag == "S") {
            stream_vector(t, in);
            counts[4]++;
        } else {
            fail("unknown line " + tag);
        }
    }
    std::cout << counts[0] << " valid, " << counts[1] << " invalid, " << counts[2] << " encode, "
              << counts[3] << " frame, " << counts[4] << " stream vectors: " << failures
              << " failed" << std::endl;
    return failures == 0 ? 0 : 1;
}
