/* Runs the C reference codec against the golden vectors, or measures its decode rate.
 *
 *   suho_test VECTORS.txt        check every vector, with each CRC; exit 0 when all pass
 *   suho_test --bench PACKETS N  decode the 144-byte packets of file PACKETS for about N
 *                                seconds with each CRC; print "<crc> <packets per second>"
 *
 * VECTORS.txt is the line form of the tests/vectors JSON files that
 * `python -m tests.unit.protocol.c_fixture` writes (the JSON files stay the one source):
 *
 *   V name decode_only type_code hex nfields field=value...   a valid packet, both ways
 *   I name hex error offset                                    an invalid packet
 *   E name type_code error offset nfields field=value...       fields an encoder refuses
 *   F name hex nrecords error offset                           a frame, then its R lines
 *   S name close pending nchunks chunk... nrecords nskips      a stream, then R and K lines
 *   R message_type nfields field=value...                      an expected record
 *   K offset length                                            an expected skip
 *
 * Values: i:<decimal> integers, b:0|1 booleans, e:NAME enums, t:<hex> text, u:<hex> UUIDs;
 * "-" is an empty hex string or no error.
 */
#include "suho.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char *tokens; /* the current line, cut into NUL-separated tokens */

static char *next_token(void)
{
    char *t = tokens;
    if (t == NULL || *t == 0)
        return NULL;
    tokens = strchr(t, ' ');
    if (tokens)
        *tokens++ = 0;
    return t;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Hex text -> bytes (malloc'ed; "-" is empty). */
static uint8_t *unhex(const char *hex, size_t *len)
{
    size_t n = strcmp(hex, "-") == 0 ? 0 : strlen(hex) / 2, i;
    uint8_t *out = malloc(n ? n : 1);
    if (out == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    for (i = 0; i < n; i++)
        out[i] = (uint8_t)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
    *len = n;
    return out;
}

static int failures, checked;
static const char *current;

static void failf(const char *what, const char *detail)
{
    failures++;
    fprintf(stderr, "FAIL %s: %s%s\n", current, what, detail ? detail : "");
}

/* Parse "field=value" of `layout` into rec; return the field index, or -1. */
static int parse_value(const suho_layout *layout, char *token, suho_record *rec)
{
    char *eq = strchr(token, '='), *val;
    int index;
    const suho_field *f;
    suho_value *v;
    if (eq == NULL)
        return -1;
    *eq = 0;
    val = eq + 1;
    index = suho_field_index(layout, token);
    if (index < 0 || val[0] == 0 || val[1] != ':')
        return -1;
    f = &layout->fields[index];
    v = &rec->value[index];
    memset(v, 0, sizeof *v);
    switch (val[0]) {
    case 'i':
        v->u = (f->type == SUHO_I32 || f->type == SUHO_I64) ? (uint64_t)strtoll(val + 2, NULL, 10)
                                                           : (uint64_t)strtoull(val + 2, NULL, 10);
        return index;
    case 'b':
        v->u = val[2] == '1';
        return index;
    case 'e': {
        uint8_t i;
        for (i = 0; i < f->nvalues; i++)
            if (strcmp(f->values[i].name, val + 2) == 0) {
                v->u = f->values[i].value;
                return index;
            }
        return -1;
    }
    case 't':
    case 'u': {
        size_t n, i;
        uint8_t *bytes = unhex(val[2] ? val + 2 : "-", &n);
        for (i = 0; i < n && i < SUHO_MAX_TEXT + 1; i++)
            v->bytes[i] = bytes[i];
        free(bytes);
        return index;
    }
    }
    return -1;
}

static int same_value(const suho_field *f, const suho_value *a, const suho_value *b)
{
    if (f->type == SUHO_UUID)
        return memcmp(a->bytes, b->bytes, 16) == 0;
    if (f->type == SUHO_TEXT)
        return strcmp((const char *)a->bytes, (const char *)b->bytes) == 0;
    return a->u == b->u;
}

/* Read "nfields field=value..." of `layout` into rec; 0 on success. */
static int read_fields(const suho_layout *layout, suho_record *rec)
{
    int n = atoi(next_token()), i;
    memset(rec, 0, sizeof *rec);
    rec->layout = layout;
    if (n != layout->nfields)
        return -1;
    for (i = 0; i < n; i++) {
        char *token = next_token();
        if (token == NULL || parse_value(layout, token, rec) < 0)
            return -1;
    }
    return 0;
}

static void compare(const suho_record *got, const suho_record *want)
{
    uint8_t i;
    if (got->layout != want->layout) {
        failf("message type differs", NULL);
        return;
    }
    for (i = 0; i < want->layout->nfields; i++)
        if (!same_value(&want->layout->fields[i], &got->value[i], &want->value[i]))
            failf("field differs: ", want->layout->fields[i].name);
}

static const suho_layout *layout_named(const char *name)
{
    int t;
    for (t = 0; t < 256; t++) {
        const suho_layout *layout = suho_layout_of((uint8_t)t);
        if (layout && strcmp(layout->name, name) == 0)
            return layout;
    }
    return NULL;
}

/* The next line must be "R message_type nfields ..."; parse it into rec. */
static int read_record_line(char **line, suho_record *rec)
{
    const suho_layout *layout;
    char *tag;
    tokens = *line;
    *line += strlen(*line) + 1;
    tag = next_token();
    if (tag == NULL || strcmp(tag, "R") != 0)
        return -1;
    layout = layout_named(next_token());
    return layout ? read_fields(layout, rec) : -1;
}

static void check_error(suho_status status, const suho_error *err, const char *name, long offset)
{
    if (strcmp(name, "-") == 0) {
        if (status != SUHO_OK)
            failf("unexpected error ", suho_status_name(status));
        return;
    }
    if (status == SUHO_OK || strcmp(suho_status_name(status), name) != 0)
        failf("wrong error, expected ", name);
    else if ((long)err->offset != offset)
        failf("wrong offset for ", name);
}

/* Break one field of a valid record at a time: the encoder must refuse it with the error
 * and offset the decoder would give (encoders validate, docs/protocol.md section 1). */
static void encoder_refuses(const suho_record *good)
{
    uint8_t i, out[SUHO_PACKET_SIZE];
    for (i = 0; i < good->layout->nfields; i++) {
        const suho_field *f = &good->layout->fields[i];
        suho_record bad = *good;
        suho_value *v = &bad.value[i];
        suho_status want = SUHO_FIELD_RANGE;
        size_t at = f->offset;
        suho_error err;
        if (f->type == SUHO_TEXT) {
            want = SUHO_INVALID_SYMBOL;
            memcpy(v->bytes, "A\x7F", 3); /* DEL is not printable */
            at = f->offset + 1;
        } else if (f->type == SUHO_ENUM) {
            uint8_t k = 0;
            for (v->u = 0; k < f->nvalues; v->u++) /* the smallest value that is no member */
                for (k = 0; k < f->nvalues && f->values[k].value != v->u; k++)
                    ;
            v->u--;
        } else if (f->type == SUHO_BOOL) {
            v->u = 2;
        } else if (f->checked && (f->type == SUHO_I32 || f->type == SUHO_I64)) {
            v->u = (uint64_t)(f->max_i < INT64_MAX ? f->max_i + 1 : f->min_i - 1);
        } else if (f->checked) {
            v->u = f->max_u < UINT64_MAX ? f->max_u + 1 : f->min_u - 1;
        } else {
            continue; /* any value is valid */
        }
        if (suho_encode(&bad, out, &err) != want || err.offset != at)
            failf("encoder accepts a broken field: ", f->name);
    }
}

static void valid_vector(void)
{
    int decode_only = atoi(next_token()), type = atoi(next_token());
    size_t len;
    uint8_t *packet = unhex(next_token(), &len), out[SUHO_PACKET_SIZE];
    const suho_layout *layout = suho_layout_of((uint8_t)type);
    suho_record want, got;
    suho_error err;
    if (layout == NULL || read_fields(layout, &want) != 0) {
        failf("cannot read the vector", NULL);
    } else if (suho_decode(packet, len, &got, &err) != SUHO_OK) {
        failf("decode fails: ", suho_status_name(err.status));
    } else {
        compare(&got, &want);
        if (!decode_only) {
            if (suho_encode(&want, out, &err) != SUHO_OK)
                failf("encode fails: ", suho_status_name(err.status));
            else if (len != SUHO_PACKET_SIZE || memcmp(out, packet, SUHO_PACKET_SIZE) != 0)
                failf("encodes to other bytes", NULL);
            encoder_refuses(&want);
        }
    }
    free(packet);
}

static void invalid_vector(void)
{
    size_t len;
    uint8_t *packet = unhex(next_token(), &len);
    const char *error = next_token();
    long offset = atol(next_token());
    suho_record rec;
    suho_error err;
    suho_status status = suho_decode(packet, len, &rec, &err);
    check_error(status, &err, error, offset);
    free(packet);
}

static void encode_vector(void)
{
    int type = atoi(next_token());
    const char *error = next_token();
    long offset = atol(next_token());
    const suho_layout *layout = suho_layout_of((uint8_t)type);
    uint8_t out[SUHO_PACKET_SIZE];
    suho_record rec;
    suho_error err;
    if (layout != NULL && read_fields(layout, &rec) != 0) {
        failf("cannot read the vector", NULL);
        return;
    }
    if (layout == NULL) { /* not a version 1 type: a record without a layout */
        memset(&rec, 0, sizeof rec);
        if (atoi(next_token()) != 0)
            failf("cannot read the vector", NULL);
    }
    check_error(suho_encode(&rec, out, &err), &err, error, offset);
}

static void frame_vector(char **line)
{
    size_t len, count, n, i;
    uint8_t *frame = unhex(next_token(), &len);
    const char *error;
    long offset;
    suho_record *records, want;
    suho_error err;
    suho_status status;
    n = (size_t)atol(next_token());
    error = next_token();
    offset = atol(next_token());
    records = malloc((len / SUHO_PACKET_SIZE + 1) * sizeof *records);
    status = suho_decode_frame(frame, len, records, len / SUHO_PACKET_SIZE + 1, &count, &err);
    check_error(status, &err, error, offset);
    if (count != n)
        failf("wrong number of records", NULL);
    for (i = 0; i < n; i++) {
        if (read_record_line(line, &want) != 0)
            failf("cannot read a record", NULL);
        else if (i < count)
            compare(&records[i], &want);
    }
    free(records);
    free(frame);
}

typedef struct {
    suho_record *items;
    size_t count, cap;
} record_list;

static void collect(void *ctx, const suho_record *rec)
{
    record_list *list = ctx;
    if (list->count == list->cap) {
        list->cap = list->cap ? 2 * list->cap : 16;
        list->items = realloc(list->items, list->cap * sizeof *list->items);
        if (list->items == NULL) {
            fprintf(stderr, "out of memory\n");
            exit(2);
        }
    }
    list->items[list->count++] = *rec;
}

static void stream_vector(char **line)
{
    int close = atoi(next_token());
    size_t pending = (size_t)atol(next_token()), nchunks = (size_t)atol(next_token()), i;
    size_t nrecords, nskips;
    record_list list = {NULL, 0, 0};
    suho_stream *s = malloc(sizeof *s);
    suho_record want;
    suho_stream_init(s);
    for (i = 0; i < nchunks; i++) {
        size_t len;
        uint8_t *chunk = unhex(next_token(), &len);
        if (suho_stream_feed(s, chunk, len, collect, &list) != 0)
            failf("out of memory", NULL);
        free(chunk);
    }
    if (close)
        suho_stream_close(s);
    nrecords = (size_t)atol(next_token());
    nskips = (size_t)atol(next_token());
    if (list.count != nrecords)
        failf("wrong number of records", NULL);
    for (i = 0; i < nrecords; i++) {
        if (read_record_line(line, &want) != 0)
            failf("cannot read a record", NULL);
        else if (i < list.count)
            compare(&list.items[i], &want);
    }
    if (s->nskips != nskips)
        failf("wrong number of skips", NULL);
    for (i = 0; i < nskips; i++) {
        char *tag;
        unsigned long long offset, length;
        tokens = *line;
        *line += strlen(*line) + 1;
        tag = next_token();
        if (tag == NULL || strcmp(tag, "K") != 0) {
            failf("cannot read a skip", NULL);
            continue;
        }
        offset = strtoull(next_token(), NULL, 10);
        length = strtoull(next_token(), NULL, 10);
        if (i < s->nskips && (s->skips[i].offset != offset || s->skips[i].length != length))
            failf("skip differs", NULL);
    }
    if (s->npending != pending)
        failf("wrong pending byte count", NULL);
    free(list.items);
    free(s);
}

static char *read_file(const char *path, size_t *size)
{
    FILE *fp = fopen(path, "rb");
    char *data;
    long n;
    if (fp == NULL || fseek(fp, 0, SEEK_END) != 0 || (n = ftell(fp)) < 0) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(2);
    }
    rewind(fp);
    data = malloc((size_t)n + 1);
    if (data == NULL || fread(data, 1, (size_t)n, fp) != (size_t)n) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(2);
    }
    fclose(fp);
    data[n] = 0;
    *size = (size_t)n;
    return data;
}

static int run_vectors(const char *path)
{
    size_t size, i;
    char *data = read_file(path, &size), *line = data, *end = data + size;
    int counts[5] = {0, 0, 0, 0, 0};
    for (i = 0; i < size; i++)
        if (data[i] == '\n')
            data[i] = 0;
    while (line < end) {
        char *tag;
        tokens = line;
        line += strlen(line) + 1;
        tag = next_token();
        if (tag == NULL)
            continue;
        current = next_token();
        checked++;
        switch (tag[0]) {
        case 'V': valid_vector(); counts[0]++; break;
        case 'I': invalid_vector(); counts[1]++; break;
        case 'E': encode_vector(); counts[2]++; break;
        case 'F': frame_vector(&line); counts[3]++; break;
        case 'S': stream_vector(&line); counts[4]++; break;
        default: failf("unknown line ", tag);
        }
    }
    printf("%d valid, %d invalid, %d encode, %d frame, %d stream vectors: %d failed\n",
           counts[0], counts[1], counts[2], counts[3], counts[4], failures);
    free(data);
    return failures ? 1 : 0;
}

static double bench(const uint8_t *packets, size_t count, double seconds)
{
    suho_record rec;
    size_t done = 0, i;
    unsigned long ok = 0;
    clock_t start = clock(), limit = (clock_t)(seconds * CLOCKS_PER_SEC), used;
    do {
        for (i = 0; i < count; i++)
            ok += suho_decode(packets + i * SUHO_PACKET_SIZE, SUHO_PACKET_SIZE, &rec, NULL) == SUHO_OK;
        done += count;
        used = clock() - start;
    } while (used < limit);
    if (ok != done)
        fprintf(stderr, "%lu of %lu packets did not decode\n", (unsigned long)(done - ok),
                (unsigned long)done);
    return (double)done / ((double)used / CLOCKS_PER_SEC);
}

int main(int argc, char **argv)
{
    suho_init();
    if (argc == 4 && strcmp(argv[1], "--bench") == 0) {
        size_t size;
        char *data = read_file(argv[2], &size);
        double seconds = atof(argv[3]);
        printf("slice8 %.0f\n", bench((const uint8_t *)data, size / SUHO_PACKET_SIZE, seconds));
        suho_crc32 = suho_crc32_table;
        printf("table %.0f\n", bench((const uint8_t *)data, size / SUHO_PACKET_SIZE, seconds));
        free(data);
        return 0;
    }
    if (argc != 2) {
        fprintf(stderr, "usage: %s VECTORS.txt | --bench PACKETS SECONDS\n", argv[0]);
        return 2;
    }
    if (suho_crc32_slice8((const uint8_t *)"123456789", 9) != 0xCBF43926u ||
        suho_crc32_table((const uint8_t *)"123456789", 9) != 0xCBF43926u) {
        fprintf(stderr, "CRC-32 check value of \"123456789\" is not 0xCBF43926\n");
        return 1;
    }
    /* Every vector with each CRC implementation. */
    printf("slicing-by-8 CRC: ");
    if (run_vectors(argv[1]) != 0)
        return 1;
    suho_crc32 = suho_crc32_table;
    printf("plain-table CRC: ");
    return run_vectors(argv[1]);
}
