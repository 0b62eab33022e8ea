//+------------------------------------------------------------------+
//|                                                  Protocol.mqh    |
//|  Suho Binary Protocol, version 1, in plain MQL5 (no DLL).        |
//+------------------------------------------------------------------+
// The codec of docs/protocol.md: CRC-32 (table), encode and decode of every packet type with
// every check of section 6 in its order, strict frames, the resynchronising stream decoder,
// fixed-point conversions, UTC microseconds (section 1.1), text (section 1.2), UUIDs, and
// builders of packets from MQL5 structures (MqlTick, AccountInfo*, OnTradeTransaction).
//
// It follows clients/c/suho.c line by line, and is checked against every golden vector of
// tests/vectors/ in both directions (clients/mql5/test, run by `make test`).
//
// Call SuhoInit() once (OnInit) before anything else.
//
// A packet is held as an SSuhoRecord: its message type and one value per field, indexed by
// the SUHO_F_* constants of Layout.mqh (the header's SUHO_F_SEQUENCE, SUHO_F_TIMESTAMP_US,
// SUHO_F_ACCOUNT_ID, then e.g. SUHO_F_BROKER_QUOTE_BID). Integers, enums and booleans are in
// u[] (a signed field as its two's complement bits: read it with (long)), text in text[], a
// UUID's 16 bytes (RFC 4122 order) in id[field * 16 ...].
#ifndef SUHO_PROTOCOL_MQH
#define SUHO_PROTOCOL_MQH

#define SUHO_PACKET_SIZE       144
#define SUHO_HEADER_SIZE       40
#define SUHO_CRC_OFFSET        140
#define SUHO_VERSION           1
#define SUHO_MAX_TIMESTAMP_US  253402300799999999
#define SUHO_PRICE_SCALE       8
#define SUHO_MONEY_SCALE       4
#define SUHO_MAX_SKIPS         64

const uchar SUHO_MAGIC[4] = {'S', 'U', 'H', 'O'};

// Outcomes: SUHO_OK, or one of the reference implementation's ProtocolError classes.
#define SUHO_OK                  0
#define SUHO_TRUNCATED           1   // TruncatedPacketError
#define SUHO_TRAILING_DATA       2   // TrailingDataError
#define SUHO_BAD_MAGIC           3   // BadMagicError
#define SUHO_UNSUPPORTED_VERSION 4   // UnsupportedVersionError
#define SUHO_UNKNOWN_TYPE        5   // UnknownMessageTypeError
#define SUHO_CHECKSUM_MISMATCH   6   // ChecksumMismatchError
#define SUHO_FIELD_RANGE         7   // FieldRangeError
#define SUHO_INVALID_SYMBOL      8   // InvalidSymbolError
#define SUHO_SKIP_NO_MAGIC       9   // stream: bytes with no packet start in them
#define SUHO_SKIP_TRUNCATED_END  10  // stream: a packet cut short by the end of the stream

// How a field is carried (SSuhoField.kind).
#define SUHO_KIND_U8    0
#define SUHO_KIND_U16   1
#define SUHO_KIND_U32   2
#define SUHO_KIND_U64   3
#define SUHO_KIND_I32   4
#define SUHO_KIND_I64   5
#define SUHO_KIND_BOOL  6
#define SUHO_KIND_ENUM  7
#define SUHO_KIND_TEXT  8
#define SUHO_KIND_UUID  9

struct SSuhoField
  {
   string            name;
   int               offset;
   int               size;
   int               kind;
   bool              checked;      // an integer narrower than its wire type: min/max apply
   long              min_i;        // ... of a signed field
   long              max_i;
   ulong             min_u;        // ... of an unsigned field
   ulong             max_u;
   int               enum_first;   // SUHO_KIND_ENUM: its values in g_suho_enum_value[]
   int               enum_count;
   int               text_low;     // SUHO_KIND_TEXT: lowest allowed byte (0x21, 0x20)
   int               text_min;     // SUHO_KIND_TEXT: 1 if the text may not be empty
  };

struct SSuhoLayout
  {
   int               type;          // message type code, header byte 5
   string            name;          // "BROKER_QUOTE", ...
   int               first_field;   // its fields: g_suho_fields[first_field ...]
   int               nfields;
   int               payload_used;  // bytes 40 .. 40+payload_used-1 are fields
  };

SSuhoField  g_suho_fields[];
SSuhoLayout g_suho_layouts[];
int         g_suho_layout_of[];      // type code -> layout index, -1: not a version 1 type
string      g_suho_enum_name[];
int         g_suho_enum_first[];
int         g_suho_enum_count[];
int         g_suho_enum_value[];
string      g_suho_enum_value_name[];
uint        g_suho_crc_table[];
bool        g_suho_ready = false;

//--- the generated tables call these -------------------------------------------------------
void SuhoEnumBegin(const string name)
  {
   int n = ArraySize(g_suho_enum_name);
   ArrayResize(g_suho_enum_name, n + 1);
   ArrayResize(g_suho_enum_first, n + 1);
   ArrayResize(g_suho_enum_count, n + 1);
   g_suho_enum_name[n] = name;
   g_suho_enum_first[n] = ArraySize(g_suho_enum_value);
   g_suho_enum_count[n] = 0;
  }

void SuhoEnumValue(const int value, const string name)
  {
   int n = ArraySize(g_suho_enum_value);
   ArrayResize(g_suho_enum_value, n + 1);
   ArrayResize(g_suho_enum_value_name, n + 1);
   g_suho_enum_value[n] = value;
   g_suho_enum_value_name[n] = name;
   g_suho_enum_count[ArraySize(g_suho_enum_name) - 1]++;
  }

void SuhoLayoutBegin(const int type, const string name, const int payload_used)
  {
   int n = ArraySize(g_suho_layouts);
   ArrayResize(g_suho_layouts, n + 1);
   g_suho_layouts[n].type = type;
   g_suho_layouts[n].name = name;
   g_suho_layouts[n].first_field = ArraySize(g_suho_fields);
   g_suho_layouts[n].nfields = 0;
   g_suho_layouts[n].payload_used = payload_used;
  }

int SuhoAddField(const string name, const int offset, const int size, const int kind)
  {
   int n = ArraySize(g_suho_fields);
   ArrayResize(g_suho_fields, n + 1);
   g_suho_fields[n].name = name;
   g_suho_fields[n].offset = offset;
   g_suho_fields[n].size = size;
   g_suho_fields[n].kind = kind;
   g_suho_fields[n].checked = false;
   g_suho_fields[n].min_i = 0;
   g_suho_fields[n].max_i = 0;
   g_suho_fields[n].min_u = 0;
   g_suho_fields[n].max_u = 0;
   g_suho_fields[n].enum_first = 0;
   g_suho_fields[n].enum_count = 0;
   g_suho_fields[n].text_low = 0;
   g_suho_fields[n].text_min = 0;
   g_suho_layouts[ArraySize(g_suho_layouts) - 1].nfields++;
   return n;
  }

void SuhoFieldUnsigned(const string name, const int offset, const int size, const int kind,
                       const bool checked, const ulong min_value, const ulong max_value)
  {
   int n = SuhoAddField(name, offset, size, kind);
   g_suho_fields[n].checked = checked;
   g_suho_fields[n].min_u = min_value;
   g_suho_fields[n].max_u = max_value;
  }

void SuhoFieldSigned(const string name, const int offset, const int size, const int kind,
                     const bool checked, const long min_value, const long max_value)
  {
   int n = SuhoAddField(name, offset, size, kind);
   g_suho_fields[n].checked = checked;
   g_suho_fields[n].min_i = min_value;
   g_suho_fields[n].max_i = max_value;
  }

void SuhoFieldText(const string name, const int offset, const int size, const int low,
                   const int min_len)
  {
   int n = SuhoAddField(name, offset, size, SUHO_KIND_TEXT);
   g_suho_fields[n].text_low = low;
   g_suho_fields[n].text_min = min_len;
  }

void SuhoFieldUuid(const string name, const int offset)
  {
   SuhoAddField(name, offset, 16, SUHO_KIND_UUID);
  }

void SuhoFieldBool(const string name, const int offset)
  {
   SuhoAddField(name, offset, 1, SUHO_KIND_BOOL);
  }

void SuhoFieldEnum(const string name, const int offset, const int size, const string enum_name)
  {
   int n = SuhoAddField(name, offset, size, SUHO_KIND_ENUM);
   for(int e = 0; e < ArraySize(g_suho_enum_name); e++)
      if(g_suho_enum_name[e] == enum_name)
        {
         g_suho_fields[n].enum_first = g_suho_enum_first[e];
         g_suho_fields[n].enum_count = g_suho_enum_count[e];
        }
  }

#include "Layout.mqh"

//+------------------------------------------------------------------+
//| Records                                                          |
//+------------------------------------------------------------------+
struct SSuhoRecord
  {
   int               type;      // message type code
   int               layout;    // index in g_suho_layouts; -1: none
   ulong             u[SUHO_MAX_FIELDS];
   string            text[SUHO_MAX_FIELDS];
   uchar             id[SUHO_MAX_FIELDS * 16];
  };

//+------------------------------------------------------------------+
//| Setting up                                                       |
//+------------------------------------------------------------------+
void SuhoInit(void)
  {
   if(g_suho_ready)
      return;
   ArrayResize(g_suho_crc_table, 256);
   for(uint i = 0; i < 256; i++)
     {
      uint c = i;
      for(int k = 0; k < 8; k++)
         c = ((c & 1) != 0) ? ((c >> 1) ^ 0xEDB88320) : (c >> 1);
      g_suho_crc_table[i] = c;
     }
   SuhoLayoutInit();
   ArrayResize(g_suho_layout_of, 256);
   ArrayInitialize(g_suho_layout_of, -1);
   for(int l = 0; l < ArraySize(g_suho_layouts); l++)
      g_suho_layout_of[g_suho_layouts[l].type] = l;
   g_suho_ready = true;
  }

// The name of an outcome, as the reference implementation's error class: "BadMagicError", ...
string SuhoStatusName(const int status)
  {
   switch(status)
     {
      case SUHO_OK:                  return "OK";
      case SUHO_TRUNCATED:           return "TruncatedPacketError";
      case SUHO_TRAILING_DATA:       return "TrailingDataError";
      case SUHO_BAD_MAGIC:           return "BadMagicError";
      case SUHO_UNSUPPORTED_VERSION: return "UnsupportedVersionError";
      case SUHO_UNKNOWN_TYPE:        return "UnknownMessageTypeError";
      case SUHO_CHECKSUM_MISMATCH:   return "ChecksumMismatchError";
      case SUHO_FIELD_RANGE:         return "FieldRangeError";
      case SUHO_INVALID_SYMBOL:      return "InvalidSymbolError";
      case SUHO_SKIP_NO_MAGIC:       return "no magic";
      case SUHO_SKIP_TRUNCATED_END:  return "truncated at end of stream";
     }
   return "?";
  }

// The ERROR code (docs/protocol.md, section 5) that answers a decoding outcome.
int SuhoErrorCodeOf(const int status)
  {
   switch(status)
     {
      case SUHO_UNSUPPORTED_VERSION: return SUHO_ERROR_CODE_UNSUPPORTED_VERSION;
      case SUHO_UNKNOWN_TYPE:        return SUHO_ERROR_CODE_UNKNOWN_MESSAGE_TYPE;
      case SUHO_CHECKSUM_MISMATCH:   return SUHO_ERROR_CODE_CHECKSUM_MISMATCH;
      case SUHO_FIELD_RANGE:         return SUHO_ERROR_CODE_FIELD_RANGE;
      case SUHO_INVALID_SYMBOL:      return SUHO_ERROR_CODE_INVALID_SYMBOL;
     }
   return SUHO_ERROR_CODE_MALFORMED_PACKET;
  }

// Layout index of a message type code; -1: not a version 1 type.
int SuhoLayoutOf(const int type)
  {
   if(type < 0 || type > 255)
      return -1;
   return g_suho_layout_of[type];
  }

int SuhoLayoutNamed(const string name)
  {
   for(int l = 0; l < ArraySize(g_suho_layouts); l++)
      if(g_suho_layouts[l].name == name)
         return l;
   return -1;
  }

// Index of a field of `layout` by name; -1: none.
int SuhoFieldIndex(const int layout, const string name)
  {
   for(int i = 0; i < g_suho_layouts[layout].nfields; i++)
      if(g_suho_fields[g_suho_layouts[layout].first_field + i].name == name)
         return i;
   return -1;
  }

// The value of an enum field called `name`; false if it has no such value.
bool SuhoEnumValueNamed(const int layout, const int field, const string name, ulong &value)
  {
   int f = g_suho_layouts[layout].first_field + field;
   for(int k = 0; k < g_suho_fields[f].enum_count; k++)
      if(g_suho_enum_value_name[g_suho_fields[f].enum_first + k] == name)
        {
         value = (ulong)g_suho_enum_value[g_suho_fields[f].enum_first + k];
         return true;
        }
   return false;
  }

//+------------------------------------------------------------------+
//| CRC-32 (zlib's: 0xEDB88320 reflected, init and final XOR ~0)     |
//+------------------------------------------------------------------+
uint SuhoCrc32(const uchar &data[], const int start, const int count)
  {
   uint crc = 0xFFFFFFFF;
   for(int i = start; i < start + count; i++)
      crc = (crc >> 8) ^ g_suho_crc_table[(crc ^ data[i]) & 0xFF];
   return crc ^ 0xFFFFFFFF;
  }

// Little-endian integers of 1, 2, 4 or 8 bytes.
ulong SuhoGetLE(const uchar &buf[], const int at, const int size)
  {
   ulong v = 0;
   for(int i = size - 1; i >= 0; i--)
      v = (v << 8) | (ulong)buf[at + i];
   return v;
  }

void SuhoPutLE(uchar &buf[], const int at, const ulong value, const int size)
  {
   ulong v = value;
   for(int i = 0; i < size; i++)
     {
      buf[at + i] = (uchar)(v & 0xFF);
      v >>= 8;
     }
  }

//+------------------------------------------------------------------+
//| Records                                                          |
//+------------------------------------------------------------------+
// An empty record of message type `type` (every field 0 or empty); false if not a type.
bool SuhoRecordInit(SSuhoRecord &rec, const int type)
  {
   rec.type = type;
   rec.layout = SuhoLayoutOf(type);
   for(int i = 0; i < SUHO_MAX_FIELDS; i++)
     {
      rec.u[i] = 0;
      rec.text[i] = "";
     }
   ArrayInitialize(rec.id, 0);
   return rec.layout >= 0;
  }

void SuhoSetUuid(SSuhoRecord &rec, const int field, const uchar &id[], const int start = 0)
  {
   ArrayCopy(rec.id, id, field * 16, start, 16);
  }

void SuhoGetUuid(const SSuhoRecord &rec, const int field, uchar &id[])
  {
   if(ArraySize(id) < 16)
      ArrayResize(id, 16);
   ArrayCopy(id, rec.id, 0, field * 16, 16);
  }

// sequence, timestamp and account: the header every packet has.
void SuhoSetHeader(SSuhoRecord &rec, const ulong sequence, const long timestamp_us,
                   const uchar &account_id[])
  {
   rec.u[SUHO_F_SEQUENCE] = sequence;
   rec.u[SUHO_F_TIMESTAMP_US] = (ulong)timestamp_us;
   SuhoSetUuid(rec, SUHO_F_ACCOUNT_ID, account_id);
  }

//+------------------------------------------------------------------+
//| Decoding (docs/protocol.md, section 6)                           |
//+------------------------------------------------------------------+
int SuhoFail(int &err_offset, const int status, const int offset)
  {
   err_offset = offset;
   return status;
  }

// One field of the packet at buf[base]: its value into rec, or the error its rule gives.
int SuhoCheckField(const int f, const uchar &buf[], const int base, SSuhoRecord &rec,
                   const int index, int &err_offset)
  {
   int at = base + g_suho_fields[f].offset;
   int size = g_suho_fields[f].size;
   int kind = g_suho_fields[f].kind;
   if(kind == SUHO_KIND_UUID)
     {
      ArrayCopy(rec.id, buf, index * 16, at, 16);
      return SUHO_OK;
     }
   if(kind == SUHO_KIND_TEXT)
     {
      // printable bytes up to the first NUL, then only NULs, and not empty if required
      int end = 0;
      while(end < size && buf[at + end] != 0)
        {
         if(buf[at + end] < g_suho_fields[f].text_low || buf[at + end] > 0x7E)
            return SuhoFail(err_offset, SUHO_INVALID_SYMBOL, g_suho_fields[f].offset + end);
         end++;
        }
      for(int i = end; i < size; i++)
         if(buf[at + i] != 0)
            return SuhoFail(err_offset, SUHO_INVALID_SYMBOL, g_suho_fields[f].offset + i);
      if(end < g_suho_fields[f].text_min)
         return SuhoFail(err_offset, SUHO_INVALID_SYMBOL, g_suho_fields[f].offset);
      rec.text[index] = (end == 0) ? "" : CharArrayToString(buf, at, end, CP_UTF8);
      return SUHO_OK;
     }
   ulong v = SuhoGetLE(buf, at, size);
   if(kind == SUHO_KIND_I32)
      v = (ulong)(long)(int)(uint)v;  // sign-extend
   rec.u[index] = v;
   if(kind == SUHO_KIND_BOOL)
      return (v <= 1) ? SUHO_OK : SuhoFail(err_offset, SUHO_FIELD_RANGE, g_suho_fields[f].offset);
   if(kind == SUHO_KIND_ENUM)
     {
      for(int k = 0; k < g_suho_fields[f].enum_count; k++)
         if((ulong)g_suho_enum_value[g_suho_fields[f].enum_first + k] == v)
            return SUHO_OK;
      return SuhoFail(err_offset, SUHO_FIELD_RANGE, g_suho_fields[f].offset);
     }
   if(g_suho_fields[f].checked)
     {
      bool in_range;
      if(kind == SUHO_KIND_I32 || kind == SUHO_KIND_I64)
         in_range = ((long)v >= g_suho_fields[f].min_i && (long)v <= g_suho_fields[f].max_i);
      else
         in_range = (v >= g_suho_fields[f].min_u && v <= g_suho_fields[f].max_u);
      if(!in_range)
         return SuhoFail(err_offset, SUHO_FIELD_RANGE, g_suho_fields[f].offset);
     }
   return SUHO_OK;
  }

// Decode the `len` bytes at buf[start] (a packet is exactly 144). Checks in the spec's order:
// length, magic, version, type, flags, CRC, then each field in offset order; the first
// failure is returned, with its offset from `start` in err_offset. Padding is ignored.
int SuhoDecode(const uchar &buf[], const int start, const int len, SSuhoRecord &rec,
               int &err_offset)
  {
   err_offset = 0;
   if(start < 0 || len < 0 || start + len > ArraySize(buf))
      return SuhoFail(err_offset, SUHO_TRUNCATED, 0);  // not that many bytes: a caller's bug
   if(len < SUHO_PACKET_SIZE)
      return SuhoFail(err_offset, SUHO_TRUNCATED, 0);
   if(len > SUHO_PACKET_SIZE)
      return SuhoFail(err_offset, SUHO_TRAILING_DATA, SUHO_PACKET_SIZE);
   if(buf[start] != SUHO_MAGIC[0] || buf[start + 1] != SUHO_MAGIC[1] ||
      buf[start + 2] != SUHO_MAGIC[2] || buf[start + 3] != SUHO_MAGIC[3])
      return SuhoFail(err_offset, SUHO_BAD_MAGIC, 0);
   if(buf[start + 4] != SUHO_VERSION)
      return SuhoFail(err_offset, SUHO_UNSUPPORTED_VERSION, 4);
   int layout = SuhoLayoutOf(buf[start + 5]);
   if(layout < 0)
      return SuhoFail(err_offset, SUHO_UNKNOWN_TYPE, 5);
   if(buf[start + 6] != 0 || buf[start + 7] != 0)  // no flag is defined in version 1
      return SuhoFail(err_offset, SUHO_FIELD_RANGE, 6);
   if(SuhoCrc32(buf, start, SUHO_CRC_OFFSET) != (uint)SuhoGetLE(buf, start + SUHO_CRC_OFFSET, 4))
      return SuhoFail(err_offset, SUHO_CHECKSUM_MISMATCH, SUHO_CRC_OFFSET);
   rec.type = buf[start + 5];
   rec.layout = layout;
   int first = g_suho_layouts[layout].first_field;
   for(int i = 0; i < g_suho_layouts[layout].nfields; i++)
     {
      int status = SuhoCheckField(first + i, buf, start, rec, i, err_offset);
      if(status != SUHO_OK)
         return status;
     }
   return SUHO_OK;
  }

//+------------------------------------------------------------------+
//| Encoding: validates, refuses what a decoder would reject         |
//+------------------------------------------------------------------+
SSuhoRecord g_suho_scratch;

// Encode `rec` into out[at .. at+143] (out grows if it is dynamic and too short). Returns
// SUHO_OK, or the error a decoder would give (and the offset in err_offset); then the bytes
// must not be sent. A message type that is not a version 1 type: SUHO_UNKNOWN_TYPE at 5; a
// text longer than its field: SUHO_INVALID_SYMBOL at the field's offset + size; a character
// that is not allowed: SUHO_INVALID_SYMBOL at its byte; a value that does not fit the field's
// wire type or its range: SUHO_FIELD_RANGE at the field's offset.
int SuhoEncode(const SSuhoRecord &rec, uchar &out[], const int at, int &err_offset)
  {
   err_offset = 0;
   int layout = SuhoLayoutOf(rec.type);
   if(layout < 0)
      return SuhoFail(err_offset, SUHO_UNKNOWN_TYPE, 5);
   if(ArraySize(out) < at + SUHO_PACKET_SIZE)
      ArrayResize(out, at + SUHO_PACKET_SIZE);
   ArrayFill(out, at, SUHO_PACKET_SIZE, 0);  // padding is written as zeros
   ArrayCopy(out, SUHO_MAGIC, at, 0, 4);
   out[at + 4] = SUHO_VERSION;
   out[at + 5] = (uchar)rec.type;
   int first = g_suho_layouts[layout].first_field;
   for(int i = 0; i < g_suho_layouts[layout].nfields; i++)
     {
      int f = first + i;
      int offset = g_suho_fields[f].offset;
      int size = g_suho_fields[f].size;
      int kind = g_suho_fields[f].kind;
      if(kind == SUHO_KIND_UUID)
        {
         ArrayCopy(out, rec.id, at + offset, i * 16, 16);
         continue;
        }
      if(kind == SUHO_KIND_TEXT)
        {
         int n = StringLen(rec.text[i]);
         if(n > size)
            return SuhoFail(err_offset, SUHO_INVALID_SYMBOL, offset + size);
         for(int k = 0; k < n; k++)
           {
            ushort c = StringGetCharacter(rec.text[i], k);
            // (uchar) of a character above 0xFF would be another, valid, byte: refuse here
            if(c > 0x7E || c < g_suho_fields[f].text_low)
               return SuhoFail(err_offset, SUHO_INVALID_SYMBOL, offset + k);
            out[at + offset + k] = (uchar)c;
           }
         continue;
        }
      ulong v = rec.u[i];
      if(kind == SUHO_KIND_I32)
        {
         if((long)v < INT_MIN || (long)v > INT_MAX)
            return SuhoFail(err_offset, SUHO_FIELD_RANGE, offset);
        }
      else
         if(size < 8 && (v >> (8 * size)) != 0)
            return SuhoFail(err_offset, SUHO_FIELD_RANGE, offset);  // does not fit the field
      SuhoPutLE(out, at + offset, v, size);
     }
   SuhoPutLE(out, at + SUHO_CRC_OFFSET, SuhoCrc32(out, at, SUHO_CRC_OFFSET), 4);
   // The encoder validates with the decoder's rules: what it sends, a receiver accepts.
   return SuhoDecode(out, at, SUHO_PACKET_SIZE, g_suho_scratch, err_offset);
  }

//+------------------------------------------------------------------+
//| Frames: packets back to back, e.g. one NATS message              |
//+------------------------------------------------------------------+
// Decode a frame strictly: its length must be a multiple of 144 (checked first: then no
// packet is decoded); the first bad packet stops the decode, its offset counted from the
// start of the frame. `count` is the number of valid packets before the error (or in all).
int SuhoDecodeFrame(const uchar &buf[], const int start, const int len, SSuhoRecord &out[],
                    int &count, int &err_offset)
  {
   count = 0;
   err_offset = 0;
   int rest = len % SUHO_PACKET_SIZE;
   if(rest != 0)
      return SuhoFail(err_offset, SUHO_TRUNCATED, len - rest);
   ArrayResize(out, len / SUHO_PACKET_SIZE);
   for(int off = 0; off < len; off += SUHO_PACKET_SIZE)
     {
      int status = SuhoDecode(buf, start + off, SUHO_PACKET_SIZE, out[count], err_offset);
      if(status != SUHO_OK)
        {
         err_offset += off;
         return status;
        }
      count++;
     }
   return SUHO_OK;
  }

//+------------------------------------------------------------------+
//| Streams: bytes that may hold garbage, fed in any pieces          |
//+------------------------------------------------------------------+
struct SSuhoSkip
  {
   ulong             offset;   // stream offset of the first skipped byte
   ulong             length;
   int               reason;   // the packet's error, or SUHO_SKIP_NO_MAGIC / _TRUNCATED_END
  };

// Feed bytes as they come (a socket); take the packets they complete with Next(). At a
// position that is not a valid packet the decoder skips to the next magic after it (or to the
// start of a magic at the very end, whose rest may come with the next feed); each bad packet
// is one skip, and so is each run of bytes without a magic, however many feeds it came in.
class CSuhoStream
  {
private:
   uchar             m_pending[];   // the start of a packet not complete yet (< 144 bytes)
   int               m_npending;
   ulong             m_base;        // stream offset of m_pending[0]
   uchar             m_buf[];
   uchar             m_ready[];     // packets decoded and not taken yet, 144 bytes each
   int               m_nready;
   int               m_taken;
   SSuhoRecord       m_check;

   bool              IsMagicStart(const int pos, const int end);
   int               NextCandidate(const int start, const int end);
   void              AddSkip(const ulong offset, const ulong length, const int reason);

public:
   ulong             skipped_bytes;
   ulong             skip_count;
   ulong             decoded;
   SSuhoSkip         skips[];       // the latest SUHO_MAX_SKIPS skips, oldest first

                     CSuhoStream(void);
   void              Reset(void);
   // Add data[start .. start+len-1].
   void              Feed(const uchar &data[], const int start, const int len);
   // End of stream: what is pending is skipped as a truncated packet.
   void              Close(void);
   // The next packet decoded, in order; false: none.
   bool              Next(SSuhoRecord &rec);
   int               Pending(void) const { return m_npending; }
   int               Ready(void) const { return m_nready - m_taken; }
  };

CSuhoStream::CSuhoStream(void)
  {
   Reset();
  }

void CSuhoStream::Reset(void)
  {
   ArrayResize(m_pending, SUHO_PACKET_SIZE);
   m_npending = 0;
   m_base = 0;
   m_nready = 0;
   m_taken = 0;
   skipped_bytes = 0;
   skip_count = 0;
   decoded = 0;
   ArrayResize(skips, 0);
  }

// Is m_buf[pos..end) the start of a magic (all of it, if it is shorter)?
bool CSuhoStream::IsMagicStart(const int pos, const int end)
  {
   int n = (end - pos < 4) ? end - pos : 4;
   for(int k = 0; k < n; k++)
      if(m_buf[pos + k] != SUHO_MAGIC[k])
         return false;
   return true;
  }

// The next position at or after `start` where a packet may begin: the next magic, else the
// start of a magic cut by the end of the bytes, else `end`.
int CSuhoStream::NextCandidate(const int start, const int end)
  {
   for(int pos = start; pos + 4 <= end; pos++)
      if(IsMagicStart(pos, pos + 4))
         return pos;
   int from = (end >= 3 && start < end - 3) ? end - 3 : start;
   for(int pos = from; pos < end; pos++)
      if(IsMagicStart(pos, end))
         return pos;
   return end;
  }

void CSuhoStream::AddSkip(const ulong offset, const ulong length, const int reason)
  {
   skipped_bytes += length;
   int last = ArraySize(skips) - 1;
   // A run of garbage is one skip however it was fed; each bad packet is a skip of its own.
   if(last >= 0 && reason == SUHO_SKIP_NO_MAGIC && skips[last].reason == reason &&
      skips[last].offset + skips[last].length == offset)
     {
      skips[last].length += length;
      return;
     }
   skip_count++;
   if(last + 1 == SUHO_MAX_SKIPS)  // keep the latest
     {
      for(int k = 1; k < SUHO_MAX_SKIPS; k++)
         skips[k - 1] = skips[k];
      last--;
     }
   ArrayResize(skips, last + 2);
   skips[last + 1].offset = offset;
   skips[last + 1].length = length;
   skips[last + 1].reason = reason;
  }

void CSuhoStream::Feed(const uchar &data[], const int start, const int len)
  {
   if(m_taken == m_nready)
     {
      m_nready = 0;
      m_taken = 0;
     }
   int end = m_npending + len;
   ArrayResize(m_buf, end);
   if(m_npending > 0)
      ArrayCopy(m_buf, m_pending, 0, 0, m_npending);
   if(len > 0)
      ArrayCopy(m_buf, data, m_npending, start, len);
   int i = 0;
   int err = 0;
   while(i < end)
     {
      int reason = SUHO_SKIP_NO_MAGIC;
      int next = end;
      if(end - i < SUHO_PACKET_SIZE)
        {
         if(IsMagicStart(i, end))
            break;  // the start of a packet: wait for the rest
         next = NextCandidate(i + 1, end);
         AddSkip(m_base + i, next - i, SUHO_SKIP_NO_MAGIC);
         i = next;
         continue;
        }
      if(IsMagicStart(i, i + 4))
        {
         reason = SuhoDecode(m_buf, i, SUHO_PACKET_SIZE, m_check, err);
         if(reason == SUHO_OK)
           {
            ArrayResize(m_ready, (m_nready + 1) * SUHO_PACKET_SIZE);
            ArrayCopy(m_ready, m_buf, m_nready * SUHO_PACKET_SIZE, i, SUHO_PACKET_SIZE);
            m_nready++;
            decoded++;
            i += SUHO_PACKET_SIZE;
            continue;
           }
        }
      next = NextCandidate(i + 1, end);
      AddSkip(m_base + i, next - i, reason);
      i = next;
     }
   m_npending = end - i;
   if(m_npending > 0)
      ArrayCopy(m_pending, m_buf, 0, i, m_npending);
   m_base += i;
  }

void CSuhoStream::Close(void)
  {
   if(m_npending > 0)
     {
      AddSkip(m_base, m_npending, SUHO_SKIP_TRUNCATED_END);
      m_base += m_npending;
      m_npending = 0;
     }
  }

bool CSuhoStream::Next(SSuhoRecord &rec)
  {
   if(m_taken >= m_nready)
      return false;
   int err = 0;
   SuhoDecode(m_ready, m_taken * SUHO_PACKET_SIZE, SUHO_PACKET_SIZE, rec, err);
   m_taken++;
   return true;
  }

//+------------------------------------------------------------------+
//| Fixed point (docs/protocol.md, section 1)                        |
//+------------------------------------------------------------------+
// value x 10^scale, rounded: (long)MathRound(price * 1e8). False if it does not fit an int64
// (or is not a number): then the packet cannot carry it.
bool SuhoToFixed(const double value, const int scale, long &out)
  {
   if(!MathIsValidNumber(value))
      return false;
   double scaled = MathRound(value * MathPow(10.0, scale));
   if(scaled >= 9223372036854775807.0 || scaled < -9223372036854775807.0)
      return false;
   out = (long)scaled;
   return true;
  }

double SuhoFromFixed(const long value, const int scale)
  {
   return (double)value / MathPow(10.0, scale);
  }

//+------------------------------------------------------------------+
//| Text (docs/protocol.md, section 1.2)                             |
//+------------------------------------------------------------------+
// Can `s` be sent in a text field of `size` bytes as it is (identifiers: allow_space false)?
bool SuhoTextFits(const string s, const int size, const bool allow_space)
  {
   int n = StringLen(s);
   if(n > size)
      return false;
   for(int i = 0; i < n; i++)
     {
      ushort c = StringGetCharacter(s, i);
      if(c > 0x7E || c < (allow_space ? 0x20 : 0x21))
         return false;
     }
   return true;
  }

// ERROR and GOODBYE detail: each character that cannot be sent becomes '?', cut at 64.
string SuhoDetail(const string s)
  {
   string out = "";
   int n = StringLen(s);
   if(n > 64)
      n = 64;
   for(int i = 0; i < n; i++)
     {
      ushort c = StringGetCharacter(s, i);
      out += (c >= 0x20 && c <= 0x7E) ? ShortToString(c) : "?";
     }
   return out;
  }

//+------------------------------------------------------------------+
//| UUIDs: 16 bytes in RFC 4122 order (not the GUID struct's)        |
//+------------------------------------------------------------------+
int SuhoHexDigit(const ushort c)
  {
   if(c >= '0' && c <= '9')
      return c - '0';
   if(c >= 'a' && c <= 'f')
      return c - 'a' + 10;
   if(c >= 'A' && c <= 'F')
      return c - 'A' + 10;
   return -1;
  }

// "6f1c2a7e-9b1d-4c2e-8a53-2f7b9d0e4c11" (dashes and braces optional) -> 16 bytes, read left
// to right; false if it is not 32 hex digits.
bool SuhoParseUuid(const string text, uchar &id[])
  {
   if(ArraySize(id) < 16)
      ArrayResize(id, 16);
   int digits = 0;
   int n = StringLen(text);
   for(int i = 0; i < n; i++)
     {
      ushort c = StringGetCharacter(text, i);
      if(c == '-' || c == '{' || c == '}' || c == ' ')
         continue;
      int v = SuhoHexDigit(c);
      if(v < 0 || digits >= 32)
         return false;
      if(digits % 2 == 0)
         id[digits / 2] = (uchar)(v << 4);
      else
         id[digits / 2] = (uchar)(id[digits / 2] | v);
      digits++;
     }
   return digits == 32;
  }

string SuhoUuidToString(const uchar &id[], const int start = 0)
  {
   string hex = "0123456789abcdef";
   string out = "";
   for(int i = 0; i < 16; i++)
     {
      if(i == 4 || i == 6 || i == 8 || i == 10)
         out += "-";
      out += StringSubstr(hex, id[start + i] >> 4, 1);
      out += StringSubstr(hex, id[start + i] & 0x0F, 1);
     }
   return out;
  }

//+------------------------------------------------------------------+
//| Time: UTC microseconds (docs/protocol.md, section 1.1)           |
//+------------------------------------------------------------------+
long  g_suho_utc0_us = 0;   // UTC µs at the moment g_suho_mono0 was read
ulong g_suho_mono0 = 0;

// In OnInit, and again every hour. With wait (the default) it waits for TimeGMT()'s second to
// turn, up to a second, so that the clock's error is a few ms instead of up to a second.
void SuhoClockInit(const bool wait = true)
  {
   datetime t = TimeGMT();
   if(wait)
      while(TimeGMT() == t)
         Sleep(1);
   g_suho_mono0 = GetMicrosecondCount();
   g_suho_utc0_us = (long)TimeGMT() * 1000000;
  }

long SuhoNowUs(void)
  {
   if(g_suho_mono0 == 0 && g_suho_utc0_us == 0)
      SuhoClockInit(false);
   return g_suho_utc0_us + (long)(GetMicrosecondCount() - g_suho_mono0);
  }

//+------------------------------------------------------------------+
//| Packets from MQL5 structures                                     |
//+------------------------------------------------------------------+
// The trade server's offset from UTC in seconds: a whole number of quarter hours (re-read it
// after the broker's daylight-saving switch; these functions read it every time).
long SuhoServerOffsetSeconds(void)
  {
   return (long)MathRound((double)(TimeTradeServer() - TimeGMT()) / 900.0) * 900;
  }

// Trade-server milliseconds (MqlTick.time_msc, DEAL_TIME_MSC) as UTC microseconds.
long SuhoServerMsToUtcUs(const long server_ms)
  {
   return (server_ms - SuhoServerOffsetSeconds() * 1000) * 1000;
  }

// A tick's time in UTC microseconds (docs/protocol.md, section 1.1).
long SuhoTickUs(const MqlTick &tick)
  {
   return SuhoServerMsToUtcUs(tick.time_msc);
  }

bool SuhoSetPrice(SSuhoRecord &rec, const int field, const double value)
  {
   long fixed = 0;
   if(!SuhoToFixed(value, SUHO_PRICE_SCALE, fixed))
      return false;
   rec.u[field] = (ulong)fixed;
   return true;
  }

bool SuhoSetMoney(SSuhoRecord &rec, const int field, const double value)
  {
   long fixed = 0;
   if(!SuhoToFixed(value, SUHO_MONEY_SCALE, fixed))
      return false;
   rec.u[field] = (ulong)fixed;
   return true;
  }

bool SuhoSetLots(SSuhoRecord &rec, const int field, const double lots)
  {
   long fixed = 0;
   if(lots < 0 || !SuhoToFixed(lots, SUHO_PRICE_SCALE, fixed))
      return false;
   rec.u[field] = (ulong)fixed;
   return true;
  }

// BROKER_QUOTE of a tick of `symbol` (its time is the tick's, in UTC). False if a price
// cannot be carried, or the symbol cannot be sent as it is (docs/protocol.md, 1.2).
bool SuhoBuildQuote(SSuhoRecord &rec, const string symbol, const MqlTick &tick)
  {
   SuhoRecordInit(rec, SUHO_MESSAGE_TYPE_BROKER_QUOTE);
   if(!SuhoTextFits(symbol, 16, false))
      return false;
   rec.u[SUHO_F_TIMESTAMP_US] = (ulong)SuhoTickUs(tick);
   rec.text[SUHO_F_BROKER_QUOTE_SYMBOL] = symbol;
   double point = SymbolInfoDouble(symbol, SYMBOL_POINT);
   double volume = (tick.volume_real > 0) ? tick.volume_real : (double)tick.volume;
   rec.u[SUHO_F_BROKER_QUOTE_SPREAD_POINTS] =
      (ulong)(long)((point > 0) ? MathRound((tick.ask - tick.bid) / point) : 0);
   return SuhoSetPrice(rec, SUHO_F_BROKER_QUOTE_BID, tick.bid) &&
          SuhoSetPrice(rec, SUHO_F_BROKER_QUOTE_ASK, tick.ask) &&
          SuhoSetPrice(rec, SUHO_F_BROKER_QUOTE_LAST, tick.last) &&
          SuhoSetLots(rec, SUHO_F_BROKER_QUOTE_VOLUME, volume);
  }

// ACCOUNT_SNAPSHOT of the account now. The margin level is sent as 0 when no margin is used
// or equity is negative, and clamped to 99,999,999.9999 % (docs/protocol.md, section 1).
bool SuhoBuildSnapshot(SSuhoRecord &rec)
  {
   SuhoRecordInit(rec, SUHO_MESSAGE_TYPE_ACCOUNT_SNAPSHOT);
   rec.u[SUHO_F_TIMESTAMP_US] = (ulong)SuhoNowUs();
   double equity = AccountInfoDouble(ACCOUNT_EQUITY);
   double margin = AccountInfoDouble(ACCOUNT_MARGIN);
   double level = AccountInfoDouble(ACCOUNT_MARGIN_LEVEL);
   if(margin <= 0 || equity < 0 || !MathIsValidNumber(level) || level < 0)
      level = 0;
   if(level > 99999999.9999)
      level = 99999999.9999;
   long leverage = AccountInfoInteger(ACCOUNT_LEVERAGE);
   string currency = AccountInfoString(ACCOUNT_CURRENCY);
   if(!SuhoTextFits(currency, 8, false) || StringLen(currency) == 0)
      return false;
   rec.u[SUHO_F_ACCOUNT_SNAPSHOT_LEVERAGE] = (ulong)((leverage >= 1 && leverage <= INT_MAX) ? leverage : 1);
   rec.text[SUHO_F_ACCOUNT_SNAPSHOT_CURRENCY] = currency;
   rec.u[SUHO_F_ACCOUNT_SNAPSHOT_MARGIN_MODE] = (ulong)(AccountInfoInteger(ACCOUNT_MARGIN_MODE) + 1);
   return SuhoSetMoney(rec, SUHO_F_ACCOUNT_SNAPSHOT_BALANCE, AccountInfoDouble(ACCOUNT_BALANCE)) &&
          SuhoSetMoney(rec, SUHO_F_ACCOUNT_SNAPSHOT_EQUITY, equity) &&
          SuhoSetMoney(rec, SUHO_F_ACCOUNT_SNAPSHOT_MARGIN, margin) &&
          SuhoSetMoney(rec, SUHO_F_ACCOUNT_SNAPSHOT_FREE_MARGIN,
                       AccountInfoDouble(ACCOUNT_MARGIN_FREE)) &&
          SuhoSetMoney(rec, SUHO_F_ACCOUNT_SNAPSHOT_MARGIN_LEVEL, level);
  }

// HEARTBEAT of the terminal now; `ea_version` is the EA's (printable ASCII, up to 16).
bool SuhoBuildHeartbeat(SSuhoRecord &rec, const string ea_version)
  {
   SuhoRecordInit(rec, SUHO_MESSAGE_TYPE_HEARTBEAT);
   if(!SuhoTextFits(ea_version, 16, false) || StringLen(ea_version) == 0)
      return false;
   rec.u[SUHO_F_TIMESTAMP_US] = (ulong)SuhoNowUs();
   rec.text[SUHO_F_HEARTBEAT_EA_VERSION] = ea_version;
   long build = TerminalInfoInteger(TERMINAL_BUILD);
   long ping_ms = TerminalInfoInteger(TERMINAL_PING_LAST) / 1000;  // it is in microseconds
   rec.u[SUHO_F_HEARTBEAT_TERMINAL_BUILD] = (ulong)((build >= 1 && build <= INT_MAX) ? build : 1);
   rec.u[SUHO_F_HEARTBEAT_PING_MS] = (ulong)((ping_ms >= 0 && ping_ms <= INT_MAX) ? ping_ms : 0);
   rec.u[SUHO_F_HEARTBEAT_TERMINAL_CONNECTED] = TerminalInfoInteger(TERMINAL_CONNECTED) ? 1 : 0;
   rec.u[SUHO_F_HEARTBEAT_TRADE_ALLOWED] =
      (TerminalInfoInteger(TERMINAL_TRADE_ALLOWED) && MQLInfoInteger(MQL_TRADE_ALLOWED)) ? 1 : 0;
   return true;
  }

// The common part of an ORDER_EVENT; the caller sets prices and money.
bool SuhoOrderEventBegin(SSuhoRecord &rec, const long server_ms, const ulong ticket,
                         const ulong position_id, const string symbol, const int order_type,
                         const int deal_type, const int status, const ulong magic)
  {
   SuhoRecordInit(rec, SUHO_MESSAGE_TYPE_ORDER_EVENT);
   if(!SuhoTextFits(symbol, 16, false) || StringLen(symbol) == 0)
      return false;
   rec.u[SUHO_F_TIMESTAMP_US] = (ulong)((server_ms > 0) ? SuhoServerMsToUtcUs(server_ms) : SuhoNowUs());
   rec.u[SUHO_F_ORDER_EVENT_TICKET] = ticket;
   rec.u[SUHO_F_ORDER_EVENT_POSITION_ID] = position_id;
   rec.text[SUHO_F_ORDER_EVENT_SYMBOL] = symbol;
   rec.u[SUHO_F_ORDER_EVENT_ORDER_TYPE] = (ulong)order_type;
   rec.u[SUHO_F_ORDER_EVENT_DEAL_TYPE] = (ulong)deal_type;
   rec.u[SUHO_F_ORDER_EVENT_STATUS] = (ulong)status;
   rec.u[SUHO_F_ORDER_EVENT_MAGIC_NUMBER] = magic & 0xFFFFFFFF;
   return true;
  }

bool SuhoOrderEventMoney(SSuhoRecord &rec, const double volume, const double price,
                         const double sl, const double tp, const double profit,
                         const double commission, const double swap)
  {
   return SuhoSetLots(rec, SUHO_F_ORDER_EVENT_VOLUME, volume) &&
          SuhoSetPrice(rec, SUHO_F_ORDER_EVENT_PRICE, price) &&
          SuhoSetPrice(rec, SUHO_F_ORDER_EVENT_STOP_LOSS, sl) &&
          SuhoSetPrice(rec, SUHO_F_ORDER_EVENT_TAKE_PROFIT, tp) &&
          SuhoSetMoney(rec, SUHO_F_ORDER_EVENT_PROFIT, profit) &&
          SuhoSetMoney(rec, SUHO_F_ORDER_EVENT_COMMISSION, commission) &&
          SuhoSetMoney(rec, SUHO_F_ORDER_EVENT_SWAP, swap);
  }

// ORDER_EVENT of an open position (status OPEN, no deal): for RESYNC_ORDERS, or after its
// stop loss or take profit changed. False if the position is gone.
bool SuhoBuildPositionEvent(SSuhoRecord &rec, const ulong position_ticket)
  {
   if(!PositionSelectByTicket(position_ticket))
      return false;
   int order_type = (PositionGetInteger(POSITION_TYPE) == POSITION_TYPE_BUY)
                    ? SUHO_ORDER_TYPE_BUY : SUHO_ORDER_TYPE_SELL;
   if(!SuhoOrderEventBegin(rec, 0, position_ticket,
                           (ulong)PositionGetInteger(POSITION_IDENTIFIER),
                           PositionGetString(POSITION_SYMBOL), order_type, SUHO_DEAL_TYPE_NONE,
                           SUHO_ORDER_STATE_OPEN, (ulong)PositionGetInteger(POSITION_MAGIC)))
      return false;
   return SuhoOrderEventMoney(rec, PositionGetDouble(POSITION_VOLUME),
                              PositionGetDouble(POSITION_PRICE_OPEN),
                              PositionGetDouble(POSITION_SL), PositionGetDouble(POSITION_TP),
                              PositionGetDouble(POSITION_PROFIT), 0,
                              PositionGetDouble(POSITION_SWAP));
  }

// ORDER_EVENT of a pending order (status PENDING, no deal, no position).
bool SuhoBuildPendingOrderEvent(SSuhoRecord &rec, const ulong order_ticket)
  {
   if(!OrderSelect(order_ticket))
      return false;
   if(!SuhoOrderEventBegin(rec, 0, order_ticket, 0, OrderGetString(ORDER_SYMBOL),
                           (int)OrderGetInteger(ORDER_TYPE), SUHO_DEAL_TYPE_NONE,
                           SUHO_ORDER_STATE_PENDING, (ulong)OrderGetInteger(ORDER_MAGIC)))
      return false;
   return SuhoOrderEventMoney(rec, OrderGetDouble(ORDER_VOLUME_CURRENT),
                              OrderGetDouble(ORDER_PRICE_OPEN), OrderGetDouble(ORDER_SL),
                              OrderGetDouble(ORDER_TP), 0, 0, 0);
  }

// The ORDER_EVENT a trade transaction calls for (docs/protocol.md, section 5, "ORDER_EVENT:
// what an EA sends"); false when there is none to send (a transient state, or what another
// transaction of the same change reports).
bool SuhoBuildOrderEvent(SSuhoRecord &rec, const MqlTradeTransaction &trans)
  {
   if(trans.type == TRADE_TRANSACTION_DEAL_ADD)
     {
      if(!HistoryDealSelect(trans.deal))
         return false;
      int deal_type = (int)HistoryDealGetInteger(trans.deal, DEAL_TYPE);
      if(deal_type < 0 || deal_type > SUHO_DEAL_TYPE_TAX)
         deal_type = SUHO_DEAL_TYPE_NONE;  // a deal type of a later MQL5: unknown here
      bool trade = (deal_type == SUHO_DEAL_TYPE_BUY || deal_type == SUHO_DEAL_TYPE_SELL);
      ulong order = (ulong)HistoryDealGetInteger(trans.deal, DEAL_ORDER);
      ulong position = (ulong)HistoryDealGetInteger(trans.deal, DEAL_POSITION_ID);
      long entry = HistoryDealGetInteger(trans.deal, DEAL_ENTRY);
      int status = SUHO_ORDER_STATE_CLOSED;  // a deal with no order: balance, commission...
      int order_type = SUHO_ORDER_TYPE_BUY;
      double sl = HistoryDealGetDouble(trans.deal, DEAL_SL);
      double tp = HistoryDealGetDouble(trans.deal, DEAL_TP);
      if(trade)
        {
         bool closing = (entry == DEAL_ENTRY_OUT || entry == DEAL_ENTRY_OUT_BY);
         bool open = PositionSelectByTicket(position);
         status = (closing && !open) ? SUHO_ORDER_STATE_CLOSED : SUHO_ORDER_STATE_OPEN;
         order_type = (deal_type == SUHO_DEAL_TYPE_BUY) ? SUHO_ORDER_TYPE_BUY : SUHO_ORDER_TYPE_SELL;
         if(HistoryOrderSelect(order))
            order_type = (int)HistoryOrderGetInteger(order, ORDER_TYPE);
         if(open)
           {
            sl = PositionGetDouble(POSITION_SL);
            tp = PositionGetDouble(POSITION_TP);
           }
        }
      if(!SuhoOrderEventBegin(rec, HistoryDealGetInteger(trans.deal, DEAL_TIME_MSC),
                              trade ? order : trans.deal, trade ? position : 0,
                              HistoryDealGetString(trans.deal, DEAL_SYMBOL), order_type,
                              deal_type, status, (ulong)HistoryDealGetInteger(trans.deal, DEAL_MAGIC)))
         return false;
      return SuhoOrderEventMoney(rec, HistoryDealGetDouble(trans.deal, DEAL_VOLUME),
                                 HistoryDealGetDouble(trans.deal, DEAL_PRICE), sl, tp,
                                 HistoryDealGetDouble(trans.deal, DEAL_PROFIT),
                                 HistoryDealGetDouble(trans.deal, DEAL_COMMISSION),
                                 HistoryDealGetDouble(trans.deal, DEAL_SWAP));
     }
   if(trans.type == TRADE_TRANSACTION_ORDER_ADD || trans.type == TRADE_TRANSACTION_ORDER_UPDATE)
     {
      // a pending order placed or modified; a market order's ORDER_ADD is transient
      if(trans.order_state != ORDER_STATE_PLACED || trans.order_type < ORDER_TYPE_BUY_LIMIT ||
         trans.order_type > ORDER_TYPE_SELL_STOP_LIMIT)
         return false;
      return SuhoBuildPendingOrderEvent(rec, trans.order);
     }
   if(trans.type == TRADE_TRANSACTION_HISTORY_ADD)
     {
      int status;
      if(trans.order_state == ORDER_STATE_CANCELED || trans.order_state == ORDER_STATE_EXPIRED)
         status = SUHO_ORDER_STATE_CANCELLED;
      else
         if(trans.order_state == ORDER_STATE_REJECTED)
            status = SUHO_ORDER_STATE_REJECTED;
         else
            return false;  // filled: its deal was reported
      ulong magic = 0;
      if(HistoryOrderSelect(trans.order))
         magic = (ulong)HistoryOrderGetInteger(trans.order, ORDER_MAGIC);
      if(!SuhoOrderEventBegin(rec, 0, trans.order, 0, trans.symbol, (int)trans.order_type,
                              SUHO_DEAL_TYPE_NONE, status, magic))
         return false;
      return SuhoOrderEventMoney(rec, trans.volume, trans.price, trans.price_sl, trans.price_tp,
                                 0, 0, 0);
     }
   if(trans.type == TRADE_TRANSACTION_POSITION)
      return SuhoBuildPositionEvent(rec, trans.position);  // stop loss or take profit changed
   return false;
  }

#endif
