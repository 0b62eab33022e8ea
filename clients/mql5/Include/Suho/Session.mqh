//+------------------------------------------------------------------+
//|                                                   Session.mqh    |
//|  The Suho session (docs/protocol.md, section 9) over MQL5's      |
//|  Socket* functions: raw TCP, TLS optional, no DLL.               |
//+------------------------------------------------------------------+
// CSuhoSession connects to the gateway (API_GATEWAY_URL: tcp://host:port or tls://host:port),
// says HELLO with the account id, the API key and the last SIGNAL/COMMAND/CONFIG it handled,
// and then:
//   * numbers every packet it sends (data, ACK, ERROR) with one counter that only rises,
//     started at max(saved + 1000, UTC microseconds) and saved every 1,000 packets and on Stop;
//   * keeps every data packet in an outbox until a cumulative ACK covers it, and after a
//     reconnect drops what WELCOME's last_accepted_sequence covers and resends the rest, in
//     order, with their original sequence and timestamp, before anything new;
//   * hands each SIGNAL, COMMAND and CONFIG to OnSignal/OnCommand/OnConfig once (a sequence
//     at or below the last handled on its channel is ACKed again and nothing else), then
//     ACKs it; the last handled per channel is saved at once, so a restart does not redo it;
//   * reconnects after a close or a silent connection, with backoff, and as each close code
//     asks (AUTH_FAILED and SUPERSEDED: it stops and says why).
//
// An EA derives a class from it, overrides the On* hooks it needs, calls Configure() and
// Start() in OnInit, Poll() from OnTimer (every 10-100 ms), Send() for each packet and Stop()
// in OnDeinit. Socket functions cannot be used in indicators: this is for Expert Advisors and
// scripts. The terminal must allow the gateway's host (Tools > Options > Expert Advisors).
#ifndef SUHO_SESSION_MQH
#define SUHO_SESSION_MQH

#include "Protocol.mqh"

#define SUHO_CHANNEL_SIGNAL   0
#define SUHO_CHANNEL_COMMAND  1
#define SUHO_CHANNEL_CONFIG   2

#define SUHO_SESSION_IDLE        0   // not connected; the next attempt is scheduled
#define SUHO_SESSION_HELLO_SENT  1   // connected, waiting for WELCOME
#define SUHO_SESSION_OPEN        2   // accepted: streaming
#define SUHO_SESSION_STOPPED     3   // refused for good (AUTH_FAILED, SUPERSEDED) or Stop()

#define SUHO_STATE_MAGIC      0x3130545348555300  // "\0SUHST01" as a little-endian long
#define SUHO_MAX_EXECUTED     256                 // signal ids remembered as executed

class CSuhoSession
  {
private:
   string            m_host;
   uint              m_port;
   bool              m_tls;
   uchar             m_account[16];
   string            m_api_key;
   string            m_state_file;
   int               m_max_outbox;
   uint              m_connect_timeout_ms;

   int               m_state;
   int               m_socket;
   CSuhoStream       m_stream;
   uchar             m_rx[];
   uchar             m_tx[];
   ulong             m_next_attempt_ms;   // when to try to connect, in GetTickCount64() ms
   uint              m_backoff_ms;
   ulong             m_connected_ms;
   ulong             m_last_rx_ms;
   ulong             m_last_tx_ms;
   uint              m_heartbeat_ms;
   uint              m_retry_after_ms;
   int               m_close_code;
   string            m_close_detail;
   int               m_sessions;
   ulong             m_resent;
   ulong             m_last_acked;

   ulong             m_next_seq;
   ulong             m_saved_seq;        // the next sequence the state file holds
   ulong             m_handled[3];       // last SIGNAL, COMMAND, CONFIG handled
   uchar             m_executed[];       // signal ids executed, 16 bytes each, a ring
   int               m_executed_next;

   uchar             m_outbox[];         // data packets not yet covered by an ACK, 144 each
   ulong             m_out_seq[];
   int               m_out_head;         // the first live packet
   int               m_out_count;        // packets in m_outbox, dropped ones included
   ulong             m_full_logged_ms;

   SSuhoRecord       m_rec;

   bool              ParseUrl(const string url);
   void              Connect(void);
   void              Disconnect(const int code, const string detail, const uint retry_ms);
   void              ScheduleRetry(const uint wait_ms);
   bool              Write(const uchar &data[], const int start, const int len);
   void              Read(void);
   void              Dispatch(SSuhoRecord &rec);
   void              OnWelcomePacket(const SSuhoRecord &welcome);
   void              OnGoodbyePacket(const SSuhoRecord &goodbye);
   void              OnChannelPacket(const SSuhoRecord &rec, const int channel);
   void              DropAcked(const ulong acked);
   void              Resend(void);
   bool              Number(SSuhoRecord &rec, uchar &out[], const int at);
   void              SaveState(const bool with_outbox);
   void              LoadState(void);
   int               ChannelOf(const int type) const;

public:
                     CSuhoSession(void);
   // Settings, before Start(): false (and a log line) if one of them cannot work.
   bool              Configure(const string url, const string account_id, const string api_key,
                               const string state_file);
   void              SetLimits(const int max_outbox, const uint connect_timeout_ms);
   // Load the saved state and connect on the next Poll().
   void              Start(void);
   // Connect, read, dispatch, keep alive, reconnect: call it often (OnTimer).
   void              Poll(void);
   // Save the state (outbox included) and close the connection.
   void              Stop(void);
   // Close the connection now and connect again in wait_ms (COMMAND DISCONNECT).
   void              Reconnect(const uint wait_ms);

   // Number `rec` (its sequence), put the account id in, encode it, keep it in the outbox if
   // it is a data packet, and write it if the session is open. False if the packet cannot be
   // sent (a field out of range: see the log) or the outbox is full.
   bool              Send(SSuhoRecord &rec);
   bool              SendAck(const ulong acked_sequence, const int acked_type);
   bool              SendError(const ulong ref_sequence, const int code, const string detail);

   int               State(void) const { return m_state; }
   bool              IsOpen(void) const { return m_state == SUHO_SESSION_OPEN; }
   int               OutboxSize(void) const { return m_out_count - m_out_head; }
   ulong             NextSequence(void) const { return m_next_seq; }
   ulong             LastAcked(void) const { return m_last_acked; }
   ulong             Handled(const int channel) const { return m_handled[channel]; }
   int               CloseCode(void) const { return m_close_code; }
   string            CloseDetail(void) const { return m_close_detail; }
   int               Sessions(void) const { return m_sessions; }
   ulong             Resent(void) const { return m_resent; }
   void              AccountId(uchar &id[]) const { ArrayCopy(id, m_account, 0, 0, 16); }
   bool              WasExecuted(const uchar &signal_id[]) const;
   void              MarkExecuted(const uchar &signal_id[]);

protected:
   // Hooks for the EA (a class derived from this one implements them all). The handlers
   // return true when the packet is handled (executed, refused or found expired): it is then
   // ACKed; false leaves it for redelivery after a reconnect.
   virtual void      OnWelcome(const ulong last_accepted) = 0;
   virtual bool      OnSignal(const SSuhoRecord &signal) = 0;
   virtual bool      OnCommand(const SSuhoRecord &command) = 0;
   virtual bool      OnConfig(const SSuhoRecord &config) = 0;
   // The gateway refused one of our packets (its detail is logged already).
   virtual void      OnError(const SSuhoRecord &error) = 0;
   // The connection ended: the close code (0: none received) and why.
   virtual void      OnClosed(const int code, const string detail) = 0;
   // Nothing was sent for half a heartbeat interval: send something (a HEARTBEAT).
   virtual void      OnKeepalive(void) = 0;
   virtual void      Log(const string text) { Print("Suho: ", text); }
  };

//+------------------------------------------------------------------+
CSuhoSession::CSuhoSession(void)
  {
   m_host = "";
   m_port = 0;
   m_tls = false;
   ArrayInitialize(m_account, 0);
   m_api_key = "";
   m_state_file = "";
   m_max_outbox = 100000;
   m_connect_timeout_ms = 3000;
   m_state = SUHO_SESSION_STOPPED;
   m_socket = INVALID_HANDLE;
   m_next_attempt_ms = 0;
   m_backoff_ms = 1000;
   m_connected_ms = 0;
   m_last_rx_ms = 0;
   m_last_tx_ms = 0;
   m_heartbeat_ms = 30000;
   m_retry_after_ms = 0;
   m_close_code = 0;
   m_close_detail = "";
   m_sessions = 0;
   m_resent = 0;
   m_last_acked = 0;
   m_next_seq = 0;
   m_saved_seq = 0;
   m_handled[0] = 0;
   m_handled[1] = 0;
   m_handled[2] = 0;
   m_executed_next = 0;
   m_out_head = 0;
   m_out_count = 0;
   m_full_logged_ms = 0;
  }

//+------------------------------------------------------------------+
bool CSuhoSession::ParseUrl(const string url)
  {
   string rest = url;
   StringTrimLeft(rest);
   StringTrimRight(rest);
   m_tls = false;
   int scheme = StringFind(rest, "://");
   if(scheme >= 0)
     {
      string name = StringSubstr(rest, 0, scheme);
      StringToLower(name);
      if(name == "tls")
         m_tls = true;
      else
         if(name != "tcp")
           {
            Log("API_GATEWAY_URL " + url + ": use tcp://host:port or tls://host:port "
                + "(MQL5 has no WebSocket client; the gateway's stream port, 8001 by default)");
            return false;
           }
      rest = StringSubstr(rest, scheme + 3);
     }
   int slash = StringFind(rest, "/");
   if(slash >= 0)
      rest = StringSubstr(rest, 0, slash);
   int colon = StringFind(rest, ":");
   if(colon <= 0)
     {
      Log("API_GATEWAY_URL " + url + ": no port (e.g. tcp://gateway.example.com:8001)");
      return false;
     }
   m_host = StringSubstr(rest, 0, colon);
   long port = StringToInteger(StringSubstr(rest, colon + 1));
   if(port <= 0 || port > 65535)
     {
      Log("API_GATEWAY_URL " + url + ": the port is not a number from 1 to 65535");
      return false;
     }
   m_port = (uint)port;
   return true;
  }

bool CSuhoSession::Configure(const string url, const string account_id, const string api_key,
                             const string state_file)
  {
   SuhoInit();
   if(!ParseUrl(url))
      return false;
   if(!SuhoParseUuid(account_id, m_account))
     {
      Log("ACCOUNT_ID \"" + account_id + "\" is not a UUID (32 hex digits, as "
          + "`suho-mt5 account create` printed it)");
      return false;
     }
   if(StringLen(api_key) == 0 || !SuhoTextFits(api_key, 64, false))
     {
      Log("API_KEY must be 1 to 64 printable ASCII characters without spaces");
      return false;
     }
   m_api_key = api_key;
   m_state_file = state_file;
   return true;
  }

void CSuhoSession::SetLimits(const int max_outbox, const uint connect_timeout_ms)
  {
   m_max_outbox = max_outbox;
   m_connect_timeout_ms = connect_timeout_ms;
  }

void CSuhoSession::Start(void)
  {
   LoadState();
   m_state = SUHO_SESSION_IDLE;
   m_next_attempt_ms = 0;
  }

//+------------------------------------------------------------------+
//| State file: next sequence, last handled per channel, executed    |
//| signal ids and (on Stop) the outbox, under MQL5\Files            |
//+------------------------------------------------------------------+
void CSuhoSession::SaveState(const bool with_outbox)
  {
   if(m_state_file == "")
      return;
   int h = FileOpen(m_state_file, FILE_WRITE | FILE_BIN);
   if(h == INVALID_HANDLE)
     {
      Log("cannot write " + m_state_file + " (error " + IntegerToString(GetLastError()) + ")");
      return;
     }
   FileWriteLong(h, SUHO_STATE_MAGIC);
   FileWriteLong(h, (long)m_next_seq);
   for(int c = 0; c < 3; c++)
      FileWriteLong(h, (long)m_handled[c]);
   FileWriteLong(h, ArraySize(m_executed) / 16);
   FileWriteLong(h, m_executed_next);
   if(ArraySize(m_executed) > 0)
      FileWriteArray(h, m_executed, 0, ArraySize(m_executed));
   int live = with_outbox ? OutboxSize() : 0;
   FileWriteLong(h, live);
   if(live > 0)
      FileWriteArray(h, m_outbox, m_out_head * SUHO_PACKET_SIZE, live * SUHO_PACKET_SIZE);
   FileClose(h);
   m_saved_seq = m_next_seq;
  }

void CSuhoSession::LoadState(void)
  {
   ulong now_us = (ulong)SuhoNowUs();
   ulong saved = 0;
   m_out_head = 0;
   m_out_count = 0;
   if(m_state_file != "" && FileIsExist(m_state_file))
     {
      int h = FileOpen(m_state_file, FILE_READ | FILE_BIN);
      if(h != INVALID_HANDLE && FileReadLong(h) == SUHO_STATE_MAGIC)
        {
         // +1000: the file may be up to 1,000 packets old (saved every 1,000, and on Stop)
         saved = (ulong)FileReadLong(h) + 1000;
         for(int c = 0; c < 3; c++)
            m_handled[c] = (ulong)FileReadLong(h);
         long ids = FileReadLong(h);
         m_executed_next = (int)FileReadLong(h);
         if(ids > 0 && ids <= SUHO_MAX_EXECUTED)
           {
            ArrayResize(m_executed, (int)ids * 16);
            FileReadArray(h, m_executed, 0, (int)ids * 16);
           }
         long live = FileReadLong(h);
         if(live > 0 && live <= m_max_outbox)
           {
            ArrayResize(m_outbox, (int)live * SUHO_PACKET_SIZE);
            ArrayResize(m_out_seq, (int)live);
            if(FileReadArray(h, m_outbox, 0, (int)live * SUHO_PACKET_SIZE) ==
               (uint)(live * SUHO_PACKET_SIZE))
              {
               for(int i = 0; i < (int)live; i++)
                  m_out_seq[i] = SuhoGetLE(m_outbox, i * SUHO_PACKET_SIZE + 8, 8);
               m_out_count = (int)live;
              }
           }
         Log("state loaded from " + m_state_file + ": " + IntegerToString(m_out_count)
             + " packets to resend");
        }
      if(h != INVALID_HANDLE)
         FileClose(h);
     }
   // Numbers rise across restarts even if the file is lost (UTC µs), and if the clock goes
   // back (the saved number).
   m_next_seq = (saved > now_us) ? saved : now_us;
   if(m_out_count > 0 && m_out_seq[m_out_count - 1] >= m_next_seq)
      m_next_seq = m_out_seq[m_out_count - 1] + 1;
   SaveState(true);
  }

//+------------------------------------------------------------------+
//| Connecting                                                       |
//+------------------------------------------------------------------+
void CSuhoSession::ScheduleRetry(const uint wait_ms)
  {
   // jitter: a gateway restart is not met by every EA at the same instant
   double jitter = 0.75 + 0.5 * MathRand() / 32767.0;
   m_next_attempt_ms = GetTickCount64() + (ulong)(wait_ms * jitter);
  }

void CSuhoSession::Connect(void)
  {
   ResetLastError();
   m_socket = SocketCreate();
   if(m_socket == INVALID_HANDLE)
     {
      Log("SocketCreate failed, error " + IntegerToString(GetLastError()));
      Disconnect(0, "no socket", m_backoff_ms);
      return;
     }
   if(!SocketConnect(m_socket, m_host, m_port, m_connect_timeout_ms))
     {
      int error = GetLastError();
      // until a first session opened, the likeliest cause is the terminal's allow-list
      string hint = (m_sessions == 0)
                    ? " (is " + m_host + " in Tools > Options > Expert Advisors > \"Allow "
                    + "WebRequest for listed URL\"?)"
                    : "";
      Log("cannot connect to " + m_host + ":" + IntegerToString(m_port) + " (error "
          + IntegerToString(error) + ")" + hint + "; next attempt in "
          + IntegerToString(m_backoff_ms / 1000) + " s");
      Disconnect(0, "cannot connect", m_backoff_ms);
      return;
     }
   if(m_tls && !SocketTlsHandshake(m_socket, m_host))
     {
      Log("TLS handshake with " + m_host + " failed (error " + IntegerToString(GetLastError())
          + ")");
      Disconnect(0, "TLS handshake failed", m_backoff_ms);
      return;
     }
   m_stream.Reset();
   m_connected_ms = GetTickCount64();
   m_last_rx_ms = m_connected_ms;
   m_close_code = 0;
   m_close_detail = "";
   m_retry_after_ms = 0;
   SuhoRecordInit(m_rec, SUHO_MESSAGE_TYPE_HELLO);
   // session packets are outside the numbered stream: sequence 0
   SuhoSetHeader(m_rec, 0, SuhoNowUs(), m_account);
   m_rec.u[SUHO_F_HELLO_LAST_SIGNAL_SEQUENCE] = m_handled[SUHO_CHANNEL_SIGNAL];
   m_rec.u[SUHO_F_HELLO_LAST_COMMAND_SEQUENCE] = m_handled[SUHO_CHANNEL_COMMAND];
   m_rec.u[SUHO_F_HELLO_LAST_CONFIG_SEQUENCE] = m_handled[SUHO_CHANNEL_CONFIG];
   m_rec.text[SUHO_F_HELLO_API_KEY] = m_api_key;
   int err = 0;
   if(SuhoEncode(m_rec, m_tx, 0, err) != SUHO_OK)
     {
      Log("cannot encode HELLO (offset " + IntegerToString(err) + ")");
      Disconnect(0, "bad HELLO", m_backoff_ms);
      return;
     }
   m_state = SUHO_SESSION_HELLO_SENT;
   Write(m_tx, 0, SUHO_PACKET_SIZE);
  }

// Close the connection (if any) and schedule the next attempt in retry_ms (0: stop).
void CSuhoSession::Disconnect(const int code, const string detail, const uint retry_ms)
  {
   bool was_connected = (m_state == SUHO_SESSION_OPEN || m_state == SUHO_SESSION_HELLO_SENT);
   if(m_socket != INVALID_HANDLE)
     {
      SocketClose(m_socket);
      m_socket = INVALID_HANDLE;
     }
   if(code != 0 || was_connected)
     {
      m_close_code = code;
      m_close_detail = detail;
     }
   if(retry_ms == 0)
      m_state = SUHO_SESSION_STOPPED;
   else
     {
      m_state = SUHO_SESSION_IDLE;
      ScheduleRetry(retry_ms);
      m_backoff_ms = (m_backoff_ms >= 15000) ? 30000 : m_backoff_ms * 2;
     }
   if(was_connected)
      OnClosed(code, detail);
  }

//+------------------------------------------------------------------+
//| Writing and reading                                              |
//+------------------------------------------------------------------+
bool CSuhoSession::Write(const uchar &data[], const int start, const int len)
  {
   if(m_socket == INVALID_HANDLE)
      return false;
   int sent;
   if(start != 0)
     {
      // SocketSend writes from the start of an array
      ArrayResize(m_tx, len);
      ArrayCopy(m_tx, data, 0, start, len);
      sent = m_tls ? SocketTlsSend(m_socket, m_tx, len) : SocketSend(m_socket, m_tx, len);
     }
   else
      sent = m_tls ? SocketTlsSend(m_socket, data, len) : SocketSend(m_socket, data, len);
   if(sent != len)
     {
      Log("the connection broke while writing (error " + IntegerToString(GetLastError()) + ")");
      Disconnect(0, "write failed", m_backoff_ms);
      return false;
     }
   m_last_tx_ms = GetTickCount64();
   return true;
  }

void CSuhoSession::Read(void)
  {
   for(int round = 0; round < 64 && m_socket != INVALID_HANDLE; round++)
     {
      int got;
      // empty first: whether a read fills the array from 0 or appends, data starts at 0
      ArrayResize(m_rx, 0);
      if(m_tls)
         got = SocketTlsReadAvailable(m_socket, m_rx, 65536);
      else
        {
         uint readable = SocketIsReadable(m_socket);
         if(readable == 0)
           {
            if(!SocketIsConnected(m_socket))
               Disconnect(0, "connection lost", m_backoff_ms);
            return;
           }
         // SocketIsReadable may say 1 when nothing is there: a short timeout, not a hang
         got = SocketRead(m_socket, m_rx, (readable < 65536) ? readable : 65536, 5);
        }
      if(got <= 0)
        {
         if(!SocketIsConnected(m_socket))
           {
            Log("the gateway closed the connection");
            Disconnect(m_close_code, m_close_detail, m_backoff_ms);
           }
         return;
        }
      m_last_rx_ms = GetTickCount64();
      m_stream.Feed(m_rx, 0, got);
      while(m_socket != INVALID_HANDLE && m_stream.Next(m_rec))
         Dispatch(m_rec);
     }
  }

//+------------------------------------------------------------------+
//| The loop                                                         |
//+------------------------------------------------------------------+
void CSuhoSession::Poll(void)
  {
   ulong now = GetTickCount64();
   if(m_state == SUHO_SESSION_STOPPED)
      return;
   if(m_state == SUHO_SESSION_IDLE)
     {
      if(now >= m_next_attempt_ms)
         Connect();
      return;
     }
   Read();
   now = GetTickCount64();
   if(m_state == SUHO_SESSION_HELLO_SENT && now - m_connected_ms > 15000)
     {
      Log("no WELCOME within 15 s");
      Disconnect(0, "no WELCOME", m_backoff_ms);
      return;
     }
   if(m_state != SUHO_SESSION_OPEN)
      return;
   // The gateway sends an ACK when it has sent nothing for an interval: three intervals of
   // silence mean the connection is dead.
   if(now - m_last_rx_ms > (ulong)m_heartbeat_ms * 3)
     {
      Log("nothing received for " + IntegerToString(m_heartbeat_ms * 3 / 1000) + " s: reconnecting");
      Disconnect(0, "silent connection", 1000);
      return;
     }
   if(now - m_last_tx_ms > (ulong)m_heartbeat_ms / 2)
      OnKeepalive();
   if(m_next_seq >= m_saved_seq + 1000)
      SaveState(false);
  }

void CSuhoSession::Stop(void)
  {
   if(m_socket != INVALID_HANDLE)
     {
      SocketClose(m_socket);
      m_socket = INVALID_HANDLE;
     }
   if(m_state != SUHO_SESSION_STOPPED || m_state_file != "")
      SaveState(true);
   m_state = SUHO_SESSION_STOPPED;
  }

void CSuhoSession::Reconnect(const uint wait_ms)
  {
   if(m_state == SUHO_SESSION_STOPPED)
      return;
   Disconnect(SUHO_CLOSE_CODE_NORMAL, "asked to disconnect", (wait_ms > 0) ? wait_ms : 1);
  }

//+------------------------------------------------------------------+
//| Packets from the gateway                                         |
//+------------------------------------------------------------------+
int CSuhoSession::ChannelOf(const int type) const
  {
   if(type == SUHO_MESSAGE_TYPE_SIGNAL)
      return SUHO_CHANNEL_SIGNAL;
   if(type == SUHO_MESSAGE_TYPE_COMMAND)
      return SUHO_CHANNEL_COMMAND;
   if(type == SUHO_MESSAGE_TYPE_CONFIG)
      return SUHO_CHANNEL_CONFIG;
   return -1;
  }

void CSuhoSession::Dispatch(SSuhoRecord &rec)
  {
   int type = rec.type;
   if(type == SUHO_MESSAGE_TYPE_WELCOME)
     {
      if(m_state == SUHO_SESSION_HELLO_SENT)
         OnWelcomePacket(rec);
      return;
     }
   if(type == SUHO_MESSAGE_TYPE_GOODBYE)
     {
      OnGoodbyePacket(rec);
      return;
     }
   if(m_state != SUHO_SESSION_OPEN)
      return;  // nothing but WELCOME and GOODBYE comes before the session is open
   if(type == SUHO_MESSAGE_TYPE_ACK)
     {
      DropAcked(rec.u[SUHO_F_ACK_ACKED_SEQUENCE]);
      return;
     }
   if(type == SUHO_MESSAGE_TYPE_ERROR)
     {
      Log("the gateway refused packet " + IntegerToString((long)rec.u[SUHO_F_ERROR_REF_SEQUENCE])
          + ": error " + IntegerToString((long)rec.u[SUHO_F_ERROR_CODE]) + ", "
          + rec.text[SUHO_F_ERROR_DETAIL]);
      OnError(rec);
      return;
     }
   int channel = ChannelOf(type);
   if(channel >= 0)
     {
      OnChannelPacket(rec, channel);
      return;
     }
   // an EA -> backend type (or HELLO) coming the wrong way
   SendError(rec.u[SUHO_F_SEQUENCE], SUHO_ERROR_CODE_WRONG_DIRECTION,
             g_suho_layouts[rec.layout].name + " travels EA -> backend only");
  }

void CSuhoSession::OnWelcomePacket(const SSuhoRecord &welcome)
  {
   int result = (int)welcome.u[SUHO_F_WELCOME_RESULT];
   m_retry_after_ms = (uint)welcome.u[SUHO_F_WELCOME_RETRY_AFTER_MS];
   if(result != SUHO_SESSION_RESULT_ACCEPTED)
     {
      // The GOODBYE that follows says the close code; until it comes, remember the wait.
      Log("HELLO refused: result " + IntegerToString(result) + ", retry after "
          + IntegerToString(m_retry_after_ms) + " ms");
      return;
     }
   ulong last = welcome.u[SUHO_F_WELCOME_LAST_ACCEPTED_SEQUENCE];
   m_heartbeat_ms = (uint)welcome.u[SUHO_F_WELCOME_HEARTBEAT_INTERVAL_MS];
   if(m_heartbeat_ms < 1000)
      m_heartbeat_ms = 1000;
   m_state = SUHO_SESSION_OPEN;
   m_sessions++;
   m_backoff_ms = 1000;
   // An EA that lost its counter continues after what the backend has stored.
   if(m_next_seq <= last)
      m_next_seq = last + 1;
   DropAcked(last);
   Log("session open with " + m_host + ": the gateway has stored up to "
       + IntegerToString((long)last) + ", resending " + IntegerToString(OutboxSize())
       + " packets");
   Resend();
   OnWelcome(last);
  }

void CSuhoSession::OnGoodbyePacket(const SSuhoRecord &goodbye)
  {
   int code = (int)goodbye.u[SUHO_F_GOODBYE_CODE];
   string detail = goodbye.text[SUHO_F_GOODBYE_DETAIL];
   uint wait = m_backoff_ms;
   string then = "reconnecting";
   switch(code)
     {
      case SUHO_CLOSE_CODE_GOING_AWAY:
         wait = 1000 + (uint)(MathRand() % 4000);  // the gateway restarts: 1-5 s
         break;
      case SUHO_CLOSE_CODE_AUTH_FAILED:
         wait = 0;
         then = "stopped: check ACCOUNT_ID and API_KEY, then attach the EA again";
         break;
      case SUHO_CLOSE_CODE_SUPERSEDED:
         wait = 0;
         then = "stopped: another connection uses this account (one EA per account)";
         break;
      case SUHO_CLOSE_CODE_RATE_LIMITED:
      case SUHO_CLOSE_CODE_BACKEND_UNAVAILABLE:
         wait = (m_retry_after_ms > 0) ? m_retry_after_ms : 5000;
         break;
      case SUHO_CLOSE_CODE_PROTOCOL_VIOLATION:
         wait = 60000;
         then = "reconnecting in 60 s (this is a bug of the EA: please report it)";
         break;
     }
   Log("the gateway closes the session: " + IntegerToString(code) + " " + detail + "; " + then);
   Disconnect(code, detail, wait);
  }

void CSuhoSession::OnChannelPacket(const SSuhoRecord &rec, const int channel)
  {
   ulong seq = rec.u[SUHO_F_SEQUENCE];
   if(seq <= m_handled[channel])
     {
      SendAck(seq, rec.type);  // handled before; its ACK was lost
      return;
     }
   bool handled;
   if(channel == SUHO_CHANNEL_SIGNAL)
      handled = OnSignal(rec);
   else
      if(channel == SUHO_CHANNEL_COMMAND)
         handled = OnCommand(rec);
      else
         handled = OnConfig(rec);
   if(!handled)
      return;
   m_handled[channel] = seq;
   SaveState(false);  // before the ACK: a restart must not handle it again
   SendAck(seq, rec.type);
  }

//+------------------------------------------------------------------+
//| The outbox                                                       |
//+------------------------------------------------------------------+
void CSuhoSession::DropAcked(const ulong acked)
  {
   if(acked > m_last_acked)
      m_last_acked = acked;
   while(m_out_head < m_out_count && m_out_seq[m_out_head] <= acked)
      m_out_head++;
   if(m_out_head == m_out_count)
     {
      m_out_head = 0;
      m_out_count = 0;
     }
   else
      if(m_out_head >= 1024 && m_out_head * 2 >= m_out_count)
        {
         int live = m_out_count - m_out_head;
         ArrayCopy(m_outbox, m_outbox, 0, m_out_head * SUHO_PACKET_SIZE, live * SUHO_PACKET_SIZE);
         ArrayCopy(m_out_seq, m_out_seq, 0, m_out_head, live);
         m_out_head = 0;
         m_out_count = live;
        }
  }

void CSuhoSession::Resend(void)
  {
   int live = OutboxSize();
   if(live == 0)
      return;
   m_resent += live;
   Write(m_outbox, m_out_head * SUHO_PACKET_SIZE, live * SUHO_PACKET_SIZE);
  }

bool CSuhoSession::Number(SSuhoRecord &rec, uchar &out[], const int at)
  {
   rec.u[SUHO_F_SEQUENCE] = m_next_seq;
   SuhoSetUuid(rec, SUHO_F_ACCOUNT_ID, m_account);
   int err = 0;
   int status = SuhoEncode(rec, out, at, err);
   if(status != SUHO_OK)
     {
      string name = (rec.layout >= 0) ? g_suho_layouts[rec.layout].name : "?";
      Log("not sent: " + name + " " + SuhoStatusName(status) + " at byte " + IntegerToString(err));
      return false;
     }
   m_next_seq++;
   return true;
  }

bool CSuhoSession::Send(SSuhoRecord &rec)
  {
   bool data = (rec.type >= 0x01 && rec.type <= 0x3F);
   if(!data)
     {
      if(!Number(rec, m_tx, 0))
         return false;
      return IsOpen() ? Write(m_tx, 0, SUHO_PACKET_SIZE) : true;
     }
   if(OutboxSize() >= m_max_outbox)
     {
      if(GetTickCount64() - m_full_logged_ms > 60000)
        {
         m_full_logged_ms = GetTickCount64();
         Log("the outbox is full (" + IntegerToString(m_max_outbox)
             + " packets not acknowledged): new packets are dropped until the gateway is back");
        }
      return false;
     }
   int at = m_out_count * SUHO_PACKET_SIZE;
   if(ArraySize(m_outbox) < at + SUHO_PACKET_SIZE)
      ArrayResize(m_outbox, at + SUHO_PACKET_SIZE, 64 * SUHO_PACKET_SIZE);
   if(!Number(rec, m_outbox, at))
      return false;
   if(ArraySize(m_out_seq) < m_out_count + 1)
      ArrayResize(m_out_seq, m_out_count + 1, 64);
   m_out_seq[m_out_count] = rec.u[SUHO_F_SEQUENCE];
   m_out_count++;
   if(IsOpen())
      Write(m_outbox, at, SUHO_PACKET_SIZE);
   return true;
  }

bool CSuhoSession::SendAck(const ulong acked_sequence, const int acked_type)
  {
   SSuhoRecord ack;
   SuhoRecordInit(ack, SUHO_MESSAGE_TYPE_ACK);
   ack.u[SUHO_F_TIMESTAMP_US] = (ulong)SuhoNowUs();
   ack.u[SUHO_F_ACK_ACKED_SEQUENCE] = acked_sequence;
   ack.u[SUHO_F_ACK_ACKED_TYPE] = (ulong)acked_type;
   return Send(ack);
  }

bool CSuhoSession::SendError(const ulong ref_sequence, const int code, const string detail)
  {
   SSuhoRecord error;
   SuhoRecordInit(error, SUHO_MESSAGE_TYPE_ERROR);
   error.u[SUHO_F_TIMESTAMP_US] = (ulong)SuhoNowUs();
   error.u[SUHO_F_ERROR_REF_SEQUENCE] = ref_sequence;
   error.u[SUHO_F_ERROR_CODE] = (ulong)code;
   error.text[SUHO_F_ERROR_DETAIL] = SuhoDetail(detail);
   return Send(error);
  }

//+------------------------------------------------------------------+
//| Signals executed at most once, by id                             |
//+------------------------------------------------------------------+
bool CSuhoSession::WasExecuted(const uchar &signal_id[]) const
  {
   int n = ArraySize(m_executed) / 16;
   for(int i = 0; i < n; i++)
     {
      bool same = true;
      for(int k = 0; k < 16 && same; k++)
         same = (m_executed[i * 16 + k] == signal_id[k]);
      if(same)
         return true;
     }
   return false;
  }

void CSuhoSession::MarkExecuted(const uchar &signal_id[])
  {
   int n = ArraySize(m_executed) / 16;
   if(n < SUHO_MAX_EXECUTED)
     {
      ArrayResize(m_executed, (n + 1) * 16);
      m_executed_next = n;
     }
   ArrayCopy(m_executed, signal_id, m_executed_next * 16, 0, 16);
   m_executed_next = (m_executed_next + 1) % SUHO_MAX_EXECUTED;
   SaveState(false);
  }

#endif
