// The MQL5 compatibility layer: what the Suho include files use of MQL5, in C++17 for g++.
//
// It lets the test build compile Include/Suho/*.mqh (after the mechanical transform of
// mql5_to_cpp.py) and run them against the golden vectors and a live gateway. It follows the
// MQL5 reference where the library depends on it (sizes and signedness of the types, strings of
// UTF-16 characters, arrays that stop the program when indexed out of range, the Socket*
// functions' return values) and is deliberately stricter where MQL5 would only misbehave:
// an out-of-range index aborts, so AddressSanitizer and the tests see it. It is not a
// terminal: what the EA needs of one (ticks, accounts, CTrade) is in terminal.h.
#ifndef SUHO_MQL5_COMPAT_H
#define SUHO_MQL5_COMPAT_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <initializer_list>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

static_assert(sizeof(long) == 8, "MQL5's long is 64 bits: build on an LP64 system");

// --- types ------------------------------------------------------------------------------
typedef unsigned char uchar;
typedef unsigned short ushort;
typedef unsigned int uint;
typedef unsigned long ulong;
typedef long datetime;
typedef int color;

#define input
#define sinput

#define WHOLE_ARRAY (-1)
#define INVALID_HANDLE (-1)
#define EMPTY_VALUE DBL_MAX
#define CP_ACP 0
#define CP_UTF8 65001

// --- errors (the codes the library reads) ---------------------------------------------
#define ERR_SUCCESS 0
#define ERR_INVALID_PARAMETER 4003
#define ERR_NETSOCKET_INVALIDHANDLE 5270
#define ERR_NETSOCKET_TOO_MANY_OPENED 5271
#define ERR_NETSOCKET_CANNOT_CONNECT 5272
#define ERR_NETSOCKET_IO_ERROR 5273
#define ERR_NETSOCKET_HANDSHAKE_FAILED 5274
#define ERR_NETSOCKET_NO_CERTIFICATE 5275
#define ERR_FILE_CANNOT_OPEN 5004

inline int &mql_last_error() { static int e = 0; return e; }
#define _LastError (mql_last_error())
inline int GetLastError() { return mql_last_error(); }
inline void ResetLastError() { mql_last_error() = 0; }
inline void SetUserError(ushort code) { mql_last_error() = 65536 + code; }

[[noreturn]] inline void mql_fatal(const char *what)
{
    std::fprintf(stderr, "MQL5 critical runtime error: %s\n", what);
    std::fflush(stdout);
    std::abort();
}

// --- strings: UTF-16 code units, as in MQL5 ----------------------------------------------
class mql_string {
public:
    std::u16string s;

    mql_string() {}
    mql_string(const char *utf8) { if (utf8) assign_utf8(utf8, std::strlen(utf8)); }
    mql_string(const std::u16string &units) : s(units) {}
    template <class T, typename std::enable_if<std::is_integral<T>::value &&
                                               !std::is_same<T, bool>::value, int>::type = 0>
    mql_string(T v) { assign_ascii(std::to_string(v)); }
    mql_string(double v)
    {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.8g", v);
        assign_ascii(buf);
    }

    static mql_string from_utf8(const std::string &text)
    {
        mql_string out;
        out.assign_utf8(text.data(), text.size());
        return out;
    }

    std::string utf8() const
    {
        std::string out;
        for (size_t i = 0; i < s.size(); i++) {
            uint32_t c = s[i];
            if (c >= 0xD800 && c < 0xDC00 && i + 1 < s.size()) {
                c = 0x10000 + ((c - 0xD800) << 10) + (s[i + 1] - 0xDC00);
                i++;
            }
            if (c < 0x80) {
                out += (char)c;
            } else if (c < 0x800) {
                out += (char)(0xC0 | c >> 6);
                out += (char)(0x80 | (c & 0x3F));
            } else if (c < 0x10000) {
                out += (char)(0xE0 | c >> 12);
                out += (char)(0x80 | ((c >> 6) & 0x3F));
                out += (char)(0x80 | (c & 0x3F));
            } else {
                out += (char)(0xF0 | c >> 18);
                out += (char)(0x80 | ((c >> 12) & 0x3F));
                out += (char)(0x80 | ((c >> 6) & 0x3F));
                out += (char)(0x80 | (c & 0x3F));
            }
        }
        return out;
    }

    mql_string &operator+=(const mql_string &o) { s += o.s; return *this; }
    bool operator==(const mql_string &o) const { return s == o.s; }
    bool operator!=(const mql_string &o) const { return s != o.s; }
    bool operator<(const mql_string &o) const { return s < o.s; }
    bool operator>(const mql_string &o) const { return s > o.s; }

private:
    void assign_ascii(const std::string &text) { s.assign(text.begin(), text.end()); }
    void assign_utf8(const char *p, size_t n)
    {
        s.clear();
        for (size_t i = 0; i < n;) {
            uint32_t c = (uchar)p[i];
            int extra = c < 0x80 ? 0 : c < 0xE0 ? 1 : c < 0xF0 ? 2 : 3;
            c = extra == 0 ? c : extra == 1 ? c & 0x1F : extra == 2 ? c & 0x0F : c & 0x07;
            for (int k = 1; k <= extra && i + k < n; k++)
                c = c << 6 | ((uchar)p[i + k] & 0x3F);
            i += 1 + extra;
            if (c >= 0x10000) {
                c -= 0x10000;
                s += (char16_t)(0xD800 + (c >> 10));
                s += (char16_t)(0xDC00 + (c & 0x3FF));
            } else {
                s += (char16_t)c;
            }
        }
    }
};

typedef mql_string string;

inline mql_string operator+(const mql_string &a, const mql_string &b)
{
    mql_string out = a;
    out += b;
    return out;
}
// A string constant: rule 3 of mql5_to_cpp.py wraps every "..." in it.
inline mql_string _S(const char *utf8) { return mql_string(utf8); }

inline int StringLen(const string &s) { return (int)s.s.size(); }
inline ushort StringGetCharacter(const string &s, int pos)
{
    return pos >= 0 && pos < (int)s.s.size() ? (ushort)s.s[(size_t)pos] : 0;
}
inline bool StringSetCharacter(string &s, int pos, ushort c)
{
    if (pos < 0 || pos > (int)s.s.size())
        return false;
    if (pos == (int)s.s.size())
        s.s += (char16_t)c;
    else
        s.s[(size_t)pos] = (char16_t)c;
    return true;
}
inline string StringSubstr(const string &s, int start, int length = -1)
{
    if (start < 0 || start >= (int)s.s.size())
        return string();
    return string(s.s.substr((size_t)start, length < 0 ? std::u16string::npos : (size_t)length));
}
inline int StringFind(const string &s, const string &match, int start = 0)
{
    if (start < 0)
        start = 0;
    size_t at = s.s.find(match.s, (size_t)start);
    return at == std::u16string::npos ? -1 : (int)at;
}
inline bool StringToLower(string &s)
{
    for (auto &c : s.s)
        if (c >= u'A' && c <= u'Z')
            c = (char16_t)(c + 32);
    return true;
}
inline bool StringToUpper(string &s)
{
    for (auto &c : s.s)
        if (c >= u'a' && c <= u'z')
            c = (char16_t)(c - 32);
    return true;
}
inline int StringTrimLeft(string &s)
{
    size_t n = 0;
    while (n < s.s.size() && (s.s[n] == u' ' || s.s[n] == u'\t' || s.s[n] == u'\r' ||
                              s.s[n] == u'\n'))
        n++;
    s.s.erase(0, n);
    return (int)n;
}
inline int StringTrimRight(string &s)
{
    size_t n = 0;
    while (!s.s.empty() && (s.s.back() == u' ' || s.s.back() == u'\t' || s.s.back() == u'\r' ||
                            s.s.back() == u'\n')) {
        s.s.pop_back();
        n++;
    }
    return (int)n;
}
inline int StringReplace(string &s, const string &find, const string &replacement)
{
    if (find.s.empty())
        return -1;
    int count = 0;
    size_t at = 0;
    while ((at = s.s.find(find.s, at)) != std::u16string::npos) {
        s.s.replace(at, find.s.size(), replacement.s);
        at += replacement.s.size();
        count++;
    }
    return count;
}
inline long StringToInteger(const string &s) { return std::strtol(s.utf8().c_str(), nullptr, 10); }
inline double StringToDouble(const string &s) { return std::strtod(s.utf8().c_str(), nullptr); }
inline string IntegerToString(long number, int str_len = 0, ushort fill_symbol = ' ')
{
    string out(std::to_string(number).c_str());
    while ((int)out.s.size() < str_len)
        out.s.insert(out.s.begin(), (char16_t)fill_symbol);
    return out;
}
inline string DoubleToString(double value, int digits = 8)
{
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", digits, value);
    return string(buf);
}
inline string ShortToString(ushort c) { return string(std::u16string(1, (char16_t)c)); }
inline string CharToString(uchar c) { return ShortToString(c); }

// printf-style formatting: strings are passed as UTF-8, everything else as it is.
template <class T> inline T mql_format_arg(T v) { return v; }
inline const char *mql_format_arg(const mql_string &v)
{
    static thread_local std::vector<std::string> keep;
    if (keep.size() > 64)
        keep.erase(keep.begin());
    keep.push_back(v.utf8());
    return keep.back().c_str();
}
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
#pragma GCC diagnostic ignored "-Wformat-security"
template <class... A> inline string StringFormat(const string &format, A... args)
{
    std::string fmt = format.utf8();
    int n = std::snprintf(nullptr, 0, fmt.c_str(), mql_format_arg(args)...);
    std::string out((size_t)(n > 0 ? n : 0) + 1, '\0');
    std::snprintf(&out[0], out.size(), fmt.c_str(), mql_format_arg(args)...);
    out.resize((size_t)(n > 0 ? n : 0));
    return mql_string::from_utf8(out);
}
#pragma GCC diagnostic pop

// MQL5 concatenates a string with a number by converting the number.
template <class T, typename std::enable_if<std::is_arithmetic<T>::value, int>::type = 0>
inline mql_string operator+(const mql_string &a, T b) { return a + mql_string(b); }
template <class T, typename std::enable_if<std::is_arithmetic<T>::value, int>::type = 0>
inline mql_string operator+(T a, const mql_string &b) { return mql_string(a) + b; }
inline mql_string operator+(const mql_string &a, const char *b) { return a + mql_string(b); }

inline std::string mql_print_arg(const mql_string &v) { return v.utf8(); }
inline std::string mql_print_arg(const char *v) { return v; }
inline std::string mql_print_arg(bool v) { return v ? "true" : "false"; }
inline std::string mql_print_arg(double v) { return mql_string(v).utf8(); }
template <class T, typename std::enable_if<std::is_integral<T>::value, int>::type = 0>
inline std::string mql_print_arg(T v) { return std::to_string(v); }

template <class... A> inline void Print(A... args)
{
    std::string line;
    using expand = int[];
    (void)expand{0, (line += mql_print_arg(args), 0)...};
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
}
template <class... A> inline void PrintFormat(const string &format, A... args)
{
    Print(StringFormat(format, args...));
}
template <class... A> inline void Alert(A... args) { Print("ALERT: ", args...); }

// --- arrays: dynamic or fixed, bounds-checked ------------------------------------------
template <class T> class mql_array {
public:
    std::vector<T> v;
    bool fixed = false;

    mql_array() {}
    explicit mql_array(long n) : v((size_t)n), fixed(true) {}
    mql_array(std::initializer_list<T> items) : v(items), fixed(true) {}

    T &operator[](long i)
    {
        if (i < 0 || i >= (long)v.size())
            out_of_range(i);
        return v[(size_t)i];
    }
    const T &operator[](long i) const
    {
        if (i < 0 || i >= (long)v.size())
            out_of_range(i);
        return v[(size_t)i];
    }

private:
    [[noreturn]] void out_of_range(long i) const
    {
        char what[96];
        std::snprintf(what, sizeof what, "array out of range (index %ld, size %zu)", i, v.size());
        mql_fatal(what);
    }
};

template <class T> inline int ArraySize(const mql_array<T> &a) { return (int)a.v.size(); }
template <class T> inline int ArrayResize(mql_array<T> &a, int size, int reserve = 0)
{
    if (size < 0)
        return -1;
    if (a.fixed) {
        if (size != (int)a.v.size())
            mql_fatal("ArrayResize of a static array");
        return size;
    }
    if (reserve > 0)
        a.v.reserve((size_t)size + (size_t)reserve);
    a.v.resize((size_t)size);
    return size;
}
template <class T> inline bool ArrayIsDynamic(const mql_array<T> &a) { return !a.fixed; }
template <class T> inline void ArrayFree(mql_array<T> &a)
{
    if (!a.fixed)
        a.v.clear();
}
template <class T>
inline int ArrayCopy(mql_array<T> &dst, const mql_array<T> &src, int dst_start = 0,
                     int src_start = 0, int count = WHOLE_ARRAY)
{
    int avail = (int)src.v.size() - src_start;
    if (src_start < 0 || dst_start < 0 || avail < 0)
        mql_fatal("ArrayCopy: start out of range");
    if (count < 0 || count > avail)
        count = avail;
    if (dst_start + count > (int)dst.v.size()) {
        if (dst.fixed)
            mql_fatal("ArrayCopy into a static array that is too small");
        dst.v.resize((size_t)(dst_start + count));
    }
    if (&dst == &src)
        std::memmove(&dst.v[0] + dst_start, &src.v[0] + src_start, sizeof(T) * (size_t)count);
    else
        for (int i = 0; i < count; i++)
            dst.v[(size_t)(dst_start + i)] = src.v[(size_t)(src_start + i)];
    return count;
}
template <class T, class V>
inline void ArrayFill(mql_array<T> &a, int start, int count, V value)
{
    if (start < 0 || count < 0 || start + count > (int)a.v.size())
        mql_fatal("ArrayFill out of range");
    for (int i = 0; i < count; i++)
        a.v[(size_t)(start + i)] = (T)value;
}
template <class T, class V> inline int ArrayInitialize(mql_array<T> &a, V value)
{
    for (auto &x : a.v)
        x = (T)value;
    return (int)a.v.size();
}
template <class T> inline void ZeroMemory(T &x) { x = T(); }

inline int StringToCharArray(const string &text, mql_array<uchar> &array, int start = 0,
                             int count = -1, uint codepage = CP_ACP)
{
    std::string bytes;
    if (codepage == CP_UTF8) {
        bytes = text.utf8();
    } else { // the test machine's "ANSI" code page: Latin-1, '?' for the rest
        for (char16_t c : text.s)
            bytes += c < 256 ? (char)c : '?';
    }
    bytes += '\0';
    int n = count < 0 || count > (int)bytes.size() ? (int)bytes.size() : count;
    if (start + n > (int)array.v.size()) {
        if (array.fixed)
            n = std::max(0, (int)array.v.size() - start);
        else
            array.v.resize((size_t)(start + n));
    }
    for (int i = 0; i < n; i++)
        array.v[(size_t)(start + i)] = (uchar)bytes[(size_t)i];
    return n;
}
inline string CharArrayToString(const mql_array<uchar> &array, int start = 0, int count = -1,
                                uint codepage = CP_ACP)
{
    std::string bytes;
    for (int i = start; i < (int)array.v.size() && (count < 0 || i < start + count); i++) {
        if (array.v[(size_t)i] == 0)
            break;
        bytes += (char)array.v[(size_t)i];
    }
    if (codepage == CP_UTF8)
        return mql_string::from_utf8(bytes);
    std::u16string units;
    for (char c : bytes)
        units += (char16_t)(uchar)c;
    return string(units);
}
inline int StringSplit(const string &s, ushort separator, mql_array<string> &result)
{
    ArrayResize(result, 0);
    std::u16string part;
    for (char16_t c : s.s) {
        if (c == separator) {
            result.v.push_back(string(part));
            part.clear();
        } else {
            part += c;
        }
    }
    if (!s.s.empty())
        result.v.push_back(string(part));
    return (int)result.v.size();
}

// --- math --------------------------------------------------------------------------------
inline double MathRound(double v) { return std::round(v); }
inline double MathAbs(double v) { return std::fabs(v); }
inline double MathFloor(double v) { return std::floor(v); }
inline double MathCeil(double v) { return std::ceil(v); }
inline double MathPow(double b, double e) { return std::pow(b, e); }
inline double MathSqrt(double v) { return std::sqrt(v); }
inline bool MathIsValidNumber(double v) { return std::isfinite(v); }
template <class A, class B> inline auto MathMax(A a, B b) -> decltype(a + b) { return a > b ? a : b; }
template <class A, class B> inline auto MathMin(A a, B b) -> decltype(a + b) { return a < b ? a : b; }
inline double NormalizeDouble(double v, int digits)
{
    double p = std::pow(10.0, digits);
    return std::round(v * p) / p;
}
inline int MathRand() { return std::rand() & 0x7FFF; }
inline void MathSrand(uint seed) { std::srand(seed); }

// --- time ---------------------------------------------------------------------------------
inline std::chrono::steady_clock::time_point mql_program_start()
{
    static const auto start = std::chrono::steady_clock::now();
    return start;
}
inline ulong GetMicrosecondCount()
{
    return (ulong)std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::steady_clock::now() - mql_program_start()).count();
}
inline ulong GetTickCount64()
{
    return (ulong)std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch()).count();
}
inline uint GetTickCount() { return (uint)GetTickCount64(); }
inline datetime TimeGMT() { return (datetime)std::time(nullptr); }
inline datetime TimeLocal() { return TimeGMT(); }
inline void Sleep(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }
#define TIME_DATE 1
#define TIME_MINUTES 2
#define TIME_SECONDS 4
inline string TimeToString(datetime t, int mode = TIME_DATE | TIME_MINUTES)
{
    std::time_t tt = (std::time_t)t;
    std::tm tm;
    gmtime_r(&tt, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, mode & TIME_SECONDS ? "%Y.%m.%d %H:%M:%S" : "%Y.%m.%d %H:%M",
                  &tm);
    return string(buf);
}

// --- files: under $MQL5_FILES (the terminal's MQL5\Files), default ./MQL5/Files --------------
#define FILE_READ 1
#define FILE_WRITE 2
#define FILE_BIN 4
#define FILE_CSV 8
#define FILE_TXT 16
#define FILE_ANSI 32
#define FILE_UNICODE 64
#define FILE_SHARE_READ 128
#define FILE_SHARE_WRITE 256
#define FILE_REWRITE 512
#define FILE_COMMON 4096

inline std::string mql_file_path(const string &name)
{
    const char *dir = std::getenv("MQL5_FILES");
    std::string base = dir ? dir : "MQL5/Files";
    std::string rel = name.utf8();
    std::replace(rel.begin(), rel.end(), '\\', '/');
    return base + "/" + rel;
}
inline std::vector<FILE *> &mql_files() { static std::vector<FILE *> f(1, nullptr); return f; }
inline int FileOpen(const string &name, int flags, short delimiter = '\t', uint codepage = CP_ACP)
{
    (void)delimiter;
    (void)codepage;
    std::string path = mql_file_path(name);
    const char *mode = (flags & FILE_WRITE) ? ((flags & FILE_READ) ? "r+b" : "wb") : "rb";
    FILE *fp = std::fopen(path.c_str(), mode);
    if (fp == nullptr && (flags & FILE_WRITE) && (flags & FILE_READ))
        fp = std::fopen(path.c_str(), "w+b");
    if (fp == nullptr) {
        mql_last_error() = ERR_FILE_CANNOT_OPEN;
        return INVALID_HANDLE;
    }
    mql_files().push_back(fp);
    return (int)mql_files().size() - 1;
}
inline FILE *mql_file(int handle)
{
    if (handle <= 0 || handle >= (int)mql_files().size() || !mql_files()[(size_t)handle])
        mql_fatal("invalid file handle");
    return mql_files()[(size_t)handle];
}
inline void FileClose(int handle)
{
    std::fclose(mql_file(handle));
    mql_files()[(size_t)handle] = nullptr;
}
inline void FileFlush(int handle) { std::fflush(mql_file(handle)); }
inline bool FileIsExist(const string &name, int common_flag = 0)
{
    (void)common_flag;
    return access(mql_file_path(name).c_str(), F_OK) == 0;
}
inline bool FileDelete(const string &name, int common_flag = 0)
{
    (void)common_flag;
    return std::remove(mql_file_path(name).c_str()) == 0;
}
inline bool FileMove(const string &src, int common_flag, const string &dst, int mode_flags)
{
    (void)common_flag;
    (void)mode_flags;
    return std::rename(mql_file_path(src).c_str(), mql_file_path(dst).c_str()) == 0;
}
inline uint FileWriteLong(int handle, long value)
{
    return std::fwrite(&value, 8, 1, mql_file(handle)) == 1 ? 8 : 0;
}
inline long FileReadLong(int handle)
{
    long value = 0;
    if (std::fread(&value, 8, 1, mql_file(handle)) != 1)
        return 0;
    return value;
}
inline bool FileIsEnding(int handle)
{
    FILE *fp = mql_file(handle);
    int c = std::fgetc(fp);
    if (c == EOF)
        return true;
    std::ungetc(c, fp);
    return false;
}
template <class T>
inline uint FileWriteArray(int handle, const mql_array<T> &array, int start = 0,
                           int count = WHOLE_ARRAY)
{
    static_assert(std::is_trivially_copyable<T>::value, "FileWriteArray of simple types only");
    int n = count < 0 ? (int)array.v.size() - start : count;
    if (n <= 0)
        return 0;
    return (uint)std::fwrite(&array.v[(size_t)start], sizeof(T), (size_t)n, mql_file(handle));
}
template <class T>
inline uint FileReadArray(int handle, mql_array<T> &array, int start = 0, int count = WHOLE_ARRAY)
{
    static_assert(std::is_trivially_copyable<T>::value, "FileReadArray of simple types only");
    FILE *fp = mql_file(handle);
    long at = std::ftell(fp);
    std::fseek(fp, 0, SEEK_END);
    long left = (std::ftell(fp) - at) / (long)sizeof(T);
    std::fseek(fp, at, SEEK_SET);
    int n = count < 0 ? (int)left : std::min(count, (int)left);
    if (start + n > (int)array.v.size())
        ArrayResize(array, start + n);
    if (n <= 0)
        return 0;
    return (uint)std::fread(&array.v[(size_t)start], sizeof(T), (size_t)n, fp);
}

// --- sockets: MQL5's Socket* functions over POSIX sockets ----------------------------------
// What the MQL5 reference says and the library relies on: handles are positive; SocketRead
// returns the bytes read, or -1 on timeout or error (the connection is broken when
// SocketIsConnected says so afterwards, _LastError ERR_NETSOCKET_IO_ERROR); SocketIsReadable
// may return 1 speculatively on an empty socket (the first time it is asked, as the MQL5 book
// describes), the real check then being the next read; SocketSend returns the bytes written
// or -1. TLS is not available in this layer: SocketTlsHandshake fails with
// ERR_NETSOCKET_HANDSHAKE_FAILED (the tests run the TCP transport).
struct mql_socket {
    int fd = -1;
    bool connected = false;
    bool asked_readable = false;
    uint send_timeout_ms = 10000;
    uint recv_timeout_ms = 10000;
};
inline std::vector<mql_socket> &mql_sockets() { static std::vector<mql_socket> s(1); return s; }
inline mql_socket *mql_socket_of(int handle)
{
    if (handle <= 0 || handle >= (int)mql_sockets().size() || mql_sockets()[(size_t)handle].fd < 0) {
        mql_last_error() = ERR_NETSOCKET_INVALIDHANDLE;
        return nullptr;
    }
    return &mql_sockets()[(size_t)handle];
}
inline void mql_socket_broken(mql_socket *s)
{
    s->connected = false;
    mql_last_error() = ERR_NETSOCKET_IO_ERROR;
}
inline int SocketCreate(uint flags = 0)
{
    (void)flags;
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        mql_last_error() = ERR_NETSOCKET_TOO_MANY_OPENED;
        return INVALID_HANDLE;
    }
    mql_socket s;
    s.fd = fd;
    mql_sockets().push_back(s);
    return (int)mql_sockets().size() - 1;
}
inline bool SocketClose(const int handle)
{
    mql_socket *s = mql_socket_of(handle);
    if (!s)
        return false;
    ::close(s->fd);
    s->fd = -1;
    s->connected = false;
    return true;
}
inline bool SocketConnect(int handle, const string &server, uint port, uint timeout_receive_ms)
{
    mql_socket *s = mql_socket_of(handle);
    if (!s)
        return false;
    addrinfo hints, *res = nullptr;
    std::memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    std::string host = server.utf8(), service = std::to_string(port);
    if (getaddrinfo(host.c_str(), service.c_str(), &hints, &res) != 0 || res == nullptr) {
        mql_last_error() = ERR_NETSOCKET_CANNOT_CONNECT;
        return false;
    }
    int flags = fcntl(s->fd, F_GETFL, 0);
    fcntl(s->fd, F_SETFL, flags | O_NONBLOCK);
    int rc = ::connect(s->fd, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if (rc != 0 && errno == EINPROGRESS) {
        pollfd p = {s->fd, POLLOUT, 0};
        int err = 0;
        socklen_t len = sizeof err;
        rc = (::poll(&p, 1, (int)timeout_receive_ms) == 1 &&
              getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) ? 0 : -1;
    }
    fcntl(s->fd, F_SETFL, flags);
    if (rc != 0) {
        mql_last_error() = ERR_NETSOCKET_CANNOT_CONNECT;
        return false;
    }
    s->connected = true;
    s->asked_readable = false;
    return true;
}
inline bool SocketIsConnected(const int handle)
{
    mql_socket *s = mql_socket_of(handle);
    return s && s->connected;
}
inline bool SocketTimeouts(int handle, uint timeout_send_ms, uint timeout_receive_ms)
{
    mql_socket *s = mql_socket_of(handle);
    if (!s)
        return false;
    s->send_timeout_ms = timeout_send_ms;
    s->recv_timeout_ms = timeout_receive_ms;
    return true;
}
inline uint SocketIsReadable(const int handle)
{
    mql_socket *s = mql_socket_of(handle);
    if (!s || !s->connected)
        return 0;
    int n = 0;
    if (ioctl(s->fd, FIONREAD, &n) != 0) {
        mql_socket_broken(s);
        return 0;
    }
    bool first = !s->asked_readable;
    s->asked_readable = true;
    if (n > 0)
        return (uint)n;
    pollfd p = {s->fd, POLLIN, 0};
    if (::poll(&p, 1, 0) == 1)
        return 1; // the end of the connection, or an error: the next read reports it
    return first ? 1 : 0;
}
inline bool SocketIsWritable(const int handle)
{
    mql_socket *s = mql_socket_of(handle);
    if (!s || !s->connected)
        return false;
    pollfd p = {s->fd, POLLOUT, 0};
    return ::poll(&p, 1, 0) == 1 && (p.revents & POLLOUT);
}
inline int SocketRead(int handle, mql_array<uchar> &buffer, uint buffer_maxlen, uint timeout_ms)
{
    mql_socket *s = mql_socket_of(handle);
    if (!s)
        return -1;
    if (!s->connected || buffer_maxlen == 0) {
        mql_last_error() = ERR_NETSOCKET_IO_ERROR;
        return -1;
    }
    pollfd p = {s->fd, POLLIN, 0};
    int ready = ::poll(&p, 1, (int)(timeout_ms ? timeout_ms : 120000));
    if (ready == 0)
        return -1; // timed out: nothing read, the connection is fine
    std::vector<uchar> tmp(buffer_maxlen);
    ssize_t got = ready < 0 ? -1 : ::recv(s->fd, tmp.data(), buffer_maxlen, 0);
    if (got <= 0) {
        mql_socket_broken(s);
        return -1;
    }
    if (buffer.fixed) {
        if ((size_t)got > buffer.v.size())
            mql_fatal("SocketRead into a static array that is too small");
    } else {
        buffer.v.resize((size_t)got);
    }
    std::memcpy(buffer.v.data(), tmp.data(), (size_t)got);
    return (int)got;
}
inline int SocketSend(int handle, const mql_array<uchar> &buffer, uint buffer_len)
{
    mql_socket *s = mql_socket_of(handle);
    if (!s)
        return -1;
    if (!s->connected || buffer_len > buffer.v.size()) {
        mql_last_error() = ERR_NETSOCKET_IO_ERROR;
        return -1;
    }
    size_t sent = 0;
    while (sent < buffer_len) {
        pollfd p = {s->fd, POLLOUT, 0};
        if (::poll(&p, 1, (int)s->send_timeout_ms) != 1)
            break;
        ssize_t n = ::send(s->fd, buffer.v.data() + sent, buffer_len - sent, MSG_NOSIGNAL);
        if (n <= 0) {
            mql_socket_broken(s);
            return -1;
        }
        sent += (size_t)n;
    }
    return sent == buffer_len ? (int)sent : -1;
}
inline bool SocketTlsHandshake(int handle, const string &host)
{
    (void)host;
    if (!mql_socket_of(handle))
        return false;
    mql_last_error() = ERR_NETSOCKET_HANDSHAKE_FAILED;
    return false;
}
inline int SocketTlsSend(int handle, const mql_array<uchar> &buffer, uint buffer_len)
{
    (void)handle;
    (void)buffer;
    (void)buffer_len;
    mql_last_error() = ERR_NETSOCKET_HANDSHAKE_FAILED;
    return -1;
}
inline int SocketTlsReadAvailable(int handle, mql_array<uchar> &buffer, const uint buffer_maxlen)
{
    (void)handle;
    (void)buffer;
    (void)buffer_maxlen;
    mql_last_error() = ERR_NETSOCKET_HANDSHAKE_FAILED;
    return -1;
}

#endif
