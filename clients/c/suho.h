/* Suho Binary Protocol, version 1: the C reference codec (C99, libc only).
 *
 * The code an MQL5 port or a DLL follows: CRC-32 (slicing-by-8 and the plain table), encode
 * and decode of one 144-byte packet with every check of docs/protocol.md section 6 in its
 * order, strict frames, and the resynchronising stream decoder. Checked against every
 * golden vector in tests/vectors/ in both directions (`make test` in this directory, or the
 * repository's `make test`).
 *
 * Call suho_init() once, before anything else (it fills the CRC tables).
 */
#ifndef SUHO_H
#define SUHO_H

#include <stddef.h>
#include <stdint.h>

#define SUHO_PACKET_SIZE 144
#define SUHO_CRC_OFFSET 140
#define SUHO_VERSION 1
#define SUHO_MAX_FIELDS 24
#define SUHO_MAX_TEXT 64
#define SUHO_MAX_SKIPS 64

/* Outcomes; each error is one of the reference implementation's ProtocolError classes. */
typedef enum {
    SUHO_OK = 0,
    SUHO_TRUNCATED,            /* TruncatedPacketError */
    SUHO_TRAILING_DATA,        /* TrailingDataError */
    SUHO_BAD_MAGIC,            /* BadMagicError */
    SUHO_UNSUPPORTED_VERSION,  /* UnsupportedVersionError */
    SUHO_UNKNOWN_TYPE,         /* UnknownMessageTypeError */
    SUHO_CHECKSUM_MISMATCH,    /* ChecksumMismatchError */
    SUHO_FIELD_RANGE,          /* FieldRangeError */
    SUHO_INVALID_SYMBOL,       /* InvalidSymbolError */
    /* Stream skips that are not a packet error: */
    SUHO_SKIP_NO_MAGIC,        /* bytes with no packet start in them */
    SUHO_SKIP_TRUNCATED_END    /* a packet cut short by the end of the stream */
} suho_status;

typedef struct {
    suho_status status;
    size_t offset; /* byte offset of the problem, from the start of the caller's buffer */
} suho_error;

const char *suho_status_name(suho_status status); /* "BadMagicError", ... */

/* --- layouts (the tables are generated: suho_layout.h) ------------------------------- */

typedef enum {
    SUHO_U8, SUHO_U16, SUHO_U32, SUHO_U64, SUHO_I32, SUHO_I64,
    SUHO_BOOL, SUHO_ENUM, SUHO_TEXT, SUHO_UUID
} suho_ftype;

typedef struct {
    uint16_t value;
    const char *name;
} suho_enum_value;

typedef struct {
    const char *name;
    uint8_t offset, size, type; /* type: suho_ftype */
    uint8_t checked;            /* integer types: 1 if narrower than the wire type */
    int64_t min_i, max_i;       /* ... the range of a signed field */
    uint64_t min_u, max_u;      /* ... the range of an unsigned field */
    const suho_enum_value *values; /* SUHO_ENUM: the allowed values */
    uint8_t nvalues;
    uint8_t text_low;           /* SUHO_TEXT: lowest allowed byte (0x21, or 0x20 with spaces) */
    uint8_t text_min;           /* SUHO_TEXT: 1 if the text may not be empty */
} suho_field;

typedef struct {
    uint8_t type;            /* message type code, header byte 5 */
    const char *name;        /* "BROKER_QUOTE", ... */
    const suho_field *fields; /* in offset order, header fields (sequence, ...) first */
    uint8_t nfields;
    uint8_t payload_used;    /* bytes 40 .. 40+payload_used-1 are fields, the rest padding */
} suho_layout;

const suho_layout *suho_layout_of(uint8_t type); /* NULL: not a version 1 type */
int suho_field_index(const suho_layout *layout, const char *name); /* -1: none */

/* --- records ------------------------------------------------------------------------ */

/* One field's value: integers, enums and booleans in `u` (a signed field as its two's
 * complement bit pattern: read it as (int64_t)u); text NUL-terminated in `bytes` (at most
 * 64 characters fit a field; there is room for one more, so that the encoder can refuse a
 * text too long for the longest field rather than the caller cutting it); a UUID's 16
 * bytes in `bytes`, in RFC 4122 (wire) order. */
typedef struct {
    uint64_t u;
    uint8_t bytes[SUHO_MAX_TEXT + 2];
} suho_value;

typedef struct {
    const suho_layout *layout;
    suho_value value[SUHO_MAX_FIELDS]; /* value[i] is layout->fields[i] */
} suho_record;

/* --- CRC-32 (zlib's: polynomial 0xEDB88320 reflected, init and final XOR 0xFFFFFFFF) --- */

void suho_init(void);
uint32_t suho_crc32_table(const uint8_t *data, size_t len);  /* one table, a byte a step */
uint32_t suho_crc32_slice8(const uint8_t *data, size_t len); /* eight tables, 8 bytes a step */
/* The CRC the codec uses; suho_crc32_slice8 unless changed (e.g. to compare speeds). */
extern uint32_t (*suho_crc32)(const uint8_t *data, size_t len);

/* --- one packet --------------------------------------------------------------------- */

/* Decode `len` bytes (a packet is exactly 144). Checks in the spec's order: length, magic,
 * version, type, flags, CRC, then each field in offset order; the first failure is
 * returned with its offset. Padding is ignored. */
suho_status suho_decode(const uint8_t *buf, size_t len, suho_record *out, suho_error *err);

/* Encode `rec` into out[144]. The encoder validates: the packet it produced is decoded
 * again and any error (a value out of range, text that is not printable ASCII or too long)
 * is returned instead; then `out` must not be sent. A record without a layout:
 * SUHO_UNKNOWN_TYPE at 5; text longer than its field: SUHO_INVALID_SYMBOL at the field's
 * offset + size; a value that does not fit the field: SUHO_FIELD_RANGE at its offset. */
suho_status suho_encode(const suho_record *rec, uint8_t out[SUHO_PACKET_SIZE], suho_error *err);

/* --- frames: packets back to back, e.g. one NATS message ------------------------------ */

/* Decode a frame strictly: its length must be a multiple of 144 (checked first: then no
 * packet is decoded); the first bad packet stops the decode. Up to `cap` records go to
 * `out`, *count says how many packets before the error (or in all) were valid. */
suho_status suho_decode_frame(const uint8_t *buf, size_t len, suho_record *out, size_t cap,
                              size_t *count, suho_error *err);

/* --- streams: bytes that may hold garbage, fed in any pieces --------------------------- */

typedef struct {
    uint64_t offset, length; /* stream offset of the first skipped byte; bytes skipped */
    suho_status reason;      /* the packet error, or SUHO_SKIP_NO_MAGIC / _TRUNCATED_END */
} suho_skip;

typedef void (*suho_on_record)(void *ctx, const suho_record *rec);

typedef struct {
    uint8_t pending[SUHO_PACKET_SIZE]; /* the start of a packet not complete yet */
    size_t npending;
    uint64_t base;            /* stream offset of pending[0] */
    uint64_t skipped_bytes, skip_count, decoded;
    suho_skip skips[SUHO_MAX_SKIPS]; /* the latest skips, oldest first */
    size_t nskips;
} suho_stream;

void suho_stream_init(suho_stream *s);
/* Feed bytes: each packet they complete goes to on_record, in order. At a position that is
 * not a valid packet the decoder skips to the next magic after it (or to the start of a
 * magic at the very end, whose rest may come with the next feed). Returns 0, or -1 if out
 * of memory. */
int suho_stream_feed(suho_stream *s, const uint8_t *data, size_t len, suho_on_record on_record,
                     void *ctx);
/* End of stream: what is pending is skipped as a truncated packet. */
void suho_stream_close(suho_stream *s);

#endif
