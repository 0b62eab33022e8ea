/* Suho Binary Protocol, version 1: the C reference codec. See suho.h and docs/protocol.md. */
#include "suho.h"
#include "suho_layout.h"

#include <stdlib.h>
#include <string.h>

static const uint8_t MAGIC[4] = {'S', 'U', 'H', 'O'};

const char *suho_status_name(suho_status status)
{
    switch (status) {
    case SUHO_OK: return "OK";
    case SUHO_TRUNCATED: return "TruncatedPacketError";
    case SUHO_TRAILING_DATA: return "TrailingDataError";
    case SUHO_BAD_MAGIC: return "BadMagicError";
    case SUHO_UNSUPPORTED_VERSION: return "UnsupportedVersionError";
    case SUHO_UNKNOWN_TYPE: return "UnknownMessageTypeError";
    case SUHO_CHECKSUM_MISMATCH: return "ChecksumMismatchError";
    case SUHO_FIELD_RANGE: return "FieldRangeError";
    case SUHO_INVALID_SYMBOL: return "InvalidSymbolError";
    case SUHO_SKIP_NO_MAGIC: return "no magic";
    case SUHO_SKIP_TRUNCATED_END: return "truncated at end of stream";
    }
    return "?";
}

/* --- CRC-32 -------------------------------------------------------------------------- */

static uint32_t crc_tables[8][256];

void suho_init(void)
{
    uint32_t i, k;
    for (i = 0; i < 256; i++) {
        uint32_t c = i;
        for (k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
        crc_tables[0][i] = c;
    }
    /* Table k: the CRC of byte i followed by k zero bytes. */
    for (i = 0; i < 256; i++)
        for (k = 1; k < 8; k++)
            crc_tables[k][i] = (crc_tables[k - 1][i] >> 8) ^ crc_tables[0][crc_tables[k - 1][i] & 0xFF];
}

uint32_t suho_crc32_table(const uint8_t *data, size_t len)
{
    uint32_t crc = 0xFFFFFFFFu;
    while (len--)
        crc = (crc >> 8) ^ crc_tables[0][(crc ^ *data++) & 0xFF];
    return crc ^ 0xFFFFFFFFu;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint32_t suho_crc32_slice8(const uint8_t *data, size_t len)
{
    uint32_t crc = 0xFFFFFFFFu;
    while (len >= 8) {
        uint32_t one = le32(data) ^ crc, two = le32(data + 4);
        crc = crc_tables[7][one & 0xFF] ^ crc_tables[6][(one >> 8) & 0xFF] ^
              crc_tables[5][(one >> 16) & 0xFF] ^ crc_tables[4][one >> 24] ^
              crc_tables[3][two & 0xFF] ^ crc_tables[2][(two >> 8) & 0xFF] ^
              crc_tables[1][(two >> 16) & 0xFF] ^ crc_tables[0][two >> 24];
        data += 8;
        len -= 8;
    }
    while (len--)
        crc = (crc >> 8) ^ crc_tables[0][(crc ^ *data++) & 0xFF];
    return crc ^ 0xFFFFFFFFu;
}

uint32_t (*suho_crc32)(const uint8_t *data, size_t len) = suho_crc32_slice8;

/* --- layouts ------------------------------------------------------------------------- */

const suho_layout *suho_layout_of(uint8_t type)
{
    size_t i;
    for (i = 0; i < SUHO_LAYOUT_COUNT; i++)
        if (SUHO_LAYOUTS[i].type == type)
            return &SUHO_LAYOUTS[i];
    return NULL;
}

int suho_field_index(const suho_layout *layout, const char *name)
{
    int i;
    for (i = 0; i < layout->nfields; i++)
        if (strcmp(layout->fields[i].name, name) == 0)
            return i;
    return -1;
}

/* Little-endian integers of 1, 2, 4 or 8 bytes. */
static uint64_t get_le(const uint8_t *p, size_t size)
{
    uint64_t v = 0;
    while (size--)
        v = v << 8 | p[size];
    return v;
}

static void put_le(uint8_t *p, uint64_t v, size_t size)
{
    size_t i;
    for (i = 0; i < size; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

/* --- decode -------------------------------------------------------------------------- */

static suho_status fail(suho_error *err, suho_status status, size_t offset)
{
    if (err) {
        err->status = status;
        err->offset = offset;
    }
    return status;
}

/* One field: copy its value into `v`, or return the error its rule gives. */
static suho_status check_field(const suho_field *f, const uint8_t *p, suho_value *v, suho_error *err)
{
    const uint8_t *at = p + f->offset;
    size_t i, end;
    switch (f->type) {
    case SUHO_UUID:
        memcpy(v->bytes, at, 16);
        return SUHO_OK;
    case SUHO_TEXT:
        /* Printable bytes up to the first NUL, then only NULs, and not empty if required. */
        for (end = 0; end < f->size && at[end]; end++)
            if (at[end] < f->text_low || at[end] > 0x7E)
                return fail(err, SUHO_INVALID_SYMBOL, f->offset + end);
        for (i = end; i < f->size; i++)
            if (at[i])
                return fail(err, SUHO_INVALID_SYMBOL, f->offset + i);
        if (end < f->text_min)
            return fail(err, SUHO_INVALID_SYMBOL, f->offset);
        memcpy(v->bytes, at, end);
        v->bytes[end] = 0;
        return SUHO_OK;
    case SUHO_BOOL:
        v->u = at[0];
        return v->u <= 1 ? SUHO_OK : fail(err, SUHO_FIELD_RANGE, f->offset);
    case SUHO_ENUM:
        v->u = get_le(at, f->size);
        for (i = 0; i < f->nvalues; i++)
            if (f->values[i].value == v->u)
                return SUHO_OK;
        return fail(err, SUHO_FIELD_RANGE, f->offset);
    case SUHO_I32:
        v->u = (uint64_t)(int64_t)(int32_t)(uint32_t)get_le(at, 4); /* sign-extend */
        break;
    default:
        v->u = get_le(at, f->size);
        break;
    }
    if (f->checked) {
        int in_range = (f->type == SUHO_I32 || f->type == SUHO_I64)
            ? ((int64_t)v->u >= f->min_i && (int64_t)v->u <= f->max_i)
            : (v->u >= f->min_u && v->u <= f->max_u);
        if (!in_range)
            return fail(err, SUHO_FIELD_RANGE, f->offset);
    }
    return SUHO_OK;
}

suho_status suho_decode(const uint8_t *buf, size_t len, suho_record *out, suho_error *err)
{
    const suho_layout *layout;
    suho_status status;
    uint8_t i;
    if (len < SUHO_PACKET_SIZE)
        return fail(err, SUHO_TRUNCATED, 0);
    if (len > SUHO_PACKET_SIZE)
        return fail(err, SUHO_TRAILING_DATA, SUHO_PACKET_SIZE);
    if (memcmp(buf, MAGIC, 4) != 0)
        return fail(err, SUHO_BAD_MAGIC, 0);
    if (buf[4] != SUHO_VERSION)
        return fail(err, SUHO_UNSUPPORTED_VERSION, 4);
    layout = suho_layout_of(buf[5]);
    if (layout == NULL)
        return fail(err, SUHO_UNKNOWN_TYPE, 5);
    if (buf[6] != 0 || buf[7] != 0) /* no flag is defined in version 1 */
        return fail(err, SUHO_FIELD_RANGE, 6);
    if (suho_crc32(buf, SUHO_CRC_OFFSET) != le32(buf + SUHO_CRC_OFFSET))
        return fail(err, SUHO_CHECKSUM_MISMATCH, SUHO_CRC_OFFSET);
    out->layout = layout;
    for (i = 0; i < layout->nfields; i++) {
        status = check_field(&layout->fields[i], buf, &out->value[i], err);
        if (status != SUHO_OK)
            return status;
    }
    return SUHO_OK;
}

/* --- encode -------------------------------------------------------------------------- */

suho_status suho_encode(const suho_record *rec, uint8_t out[SUHO_PACKET_SIZE], suho_error *err)
{
    const suho_layout *layout = rec->layout;
    suho_record check;
    uint8_t i;
    if (layout == NULL) /* no layout: not a version 1 message type */
        return fail(err, SUHO_UNKNOWN_TYPE, 5);
    memset(out, 0, SUHO_PACKET_SIZE); /* padding is written as zeros */
    memcpy(out, MAGIC, 4);
    out[4] = SUHO_VERSION;
    out[5] = layout->type;
    for (i = 0; i < layout->nfields; i++) {
        const suho_field *f = &layout->fields[i];
        const suho_value *v = &rec->value[i];
        if (f->type == SUHO_UUID) {
            memcpy(out + f->offset, v->bytes, 16);
        } else if (f->type == SUHO_TEXT) {
            size_t n = strlen((const char *)v->bytes);
            if (n > f->size)
                return fail(err, SUHO_INVALID_SYMBOL, f->offset + f->size);
            memcpy(out + f->offset, v->bytes, n);
        } else {
            put_le(out + f->offset, v->u, f->size);
            if (f->size < 8 && f->type != SUHO_I32 && (v->u >> (8 * f->size)) != 0)
                return fail(err, SUHO_FIELD_RANGE, f->offset); /* does not fit the field */
            if (f->type == SUHO_I32 && (int64_t)v->u != (int32_t)(uint32_t)v->u)
                return fail(err, SUHO_FIELD_RANGE, f->offset);
        }
    }
    put_le(out + SUHO_CRC_OFFSET, suho_crc32(out, SUHO_CRC_OFFSET), 4);
    /* The encoder validates with the decoder's rules: what it sends, a receiver accepts. */
    return suho_decode(out, SUHO_PACKET_SIZE, &check, err);
}

/* --- frames -------------------------------------------------------------------------- */

suho_status suho_decode_frame(const uint8_t *buf, size_t len, suho_record *out, size_t cap,
                              size_t *count, suho_error *err)
{
    size_t off, rest = len % SUHO_PACKET_SIZE;
    suho_record scratch;
    *count = 0;
    if (rest)
        return fail(err, SUHO_TRUNCATED, len - rest);
    for (off = 0; off < len; off += SUHO_PACKET_SIZE) {
        suho_record *rec = *count < cap ? &out[*count] : &scratch;
        suho_status status = suho_decode(buf + off, SUHO_PACKET_SIZE, rec, err);
        if (status != SUHO_OK) {
            if (err)
                err->offset += off;
            return status;
        }
        ++*count;
    }
    return SUHO_OK;
}

/* --- streams ------------------------------------------------------------------------- */

void suho_stream_init(suho_stream *s)
{
    memset(s, 0, sizeof *s);
}

static void add_skip(suho_stream *s, uint64_t offset, uint64_t length, suho_status reason)
{
    suho_skip *last = s->nskips ? &s->skips[s->nskips - 1] : NULL;
    s->skipped_bytes += length;
    /* A run of garbage is one skip however it was fed; each bad packet is a skip of its own. */
    if (last && reason == SUHO_SKIP_NO_MAGIC && last->reason == reason &&
        last->offset + last->length == offset) {
        last->length += length;
        return;
    }
    s->skip_count++;
    if (s->nskips == SUHO_MAX_SKIPS) { /* keep the latest */
        memmove(s->skips, s->skips + 1, (SUHO_MAX_SKIPS - 1) * sizeof *s->skips);
        s->nskips--;
    }
    s->skips[s->nskips].offset = offset;
    s->skips[s->nskips].length = length;
    s->skips[s->nskips].reason = reason;
    s->nskips++;
}

/* Is buf[pos..len) the start of a magic (all of it, if it is shorter)? */
static int magic_prefix(const uint8_t *buf, size_t pos, size_t len)
{
    size_t n = len - pos < 4 ? len - pos : 4;
    return memcmp(buf + pos, MAGIC, n) == 0;
}

/* The next position at or after `start` where a packet may begin: the next magic, else the
 * start of a magic cut by the end of the bytes, else `len`. */
static size_t next_candidate(const uint8_t *buf, size_t start, size_t len)
{
    size_t pos;
    for (pos = start; pos + 4 <= len; pos++)
        if (memcmp(buf + pos, MAGIC, 4) == 0)
            return pos;
    for (pos = len >= 3 && start < len - 3 ? len - 3 : start; pos < len; pos++)
        if (magic_prefix(buf, pos, len))
            return pos;
    return len;
}

int suho_stream_feed(suho_stream *s, const uint8_t *data, size_t len, suho_on_record on_record,
                     void *ctx)
{
    size_t end = s->npending + len, i = 0;
    uint8_t *buf = malloc(end ? end : 1);
    suho_record rec;
    suho_error err;
    if (buf == NULL)
        return -1;
    memcpy(buf, s->pending, s->npending);
    if (len)
        memcpy(buf + s->npending, data, len);
    while (i < end) {
        suho_status reason;
        size_t next;
        if (end - i < SUHO_PACKET_SIZE) {
            if (magic_prefix(buf, i, end))
                break; /* the start of a packet: wait for the rest */
            next = next_candidate(buf, i + 1, end);
            add_skip(s, s->base + i, next - i, SUHO_SKIP_NO_MAGIC);
            i = next;
            continue;
        }
        if (memcmp(buf + i, MAGIC, 4) == 0) {
            if (suho_decode(buf + i, SUHO_PACKET_SIZE, &rec, &err) == SUHO_OK) {
                s->decoded++;
                if (on_record)
                    on_record(ctx, &rec);
                i += SUHO_PACKET_SIZE;
                continue;
            }
            reason = err.status;
        } else {
            reason = SUHO_SKIP_NO_MAGIC;
        }
        next = next_candidate(buf, i + 1, end);
        add_skip(s, s->base + i, next - i, reason);
        i = next;
    }
    s->npending = end - i;
    memcpy(s->pending, buf + i, s->npending);
    s->base += i;
    free(buf);
    return 0;
}

void suho_stream_close(suho_stream *s)
{
    if (s->npending) {
        add_skip(s, s->base, s->npending, SUHO_SKIP_TRUNCATED_END);
        s->base += s->npending;
        s->npending = 0;
    }
}
