//+------------------------------------------------------------------+
//|                                                 SuhoBridge.mq5   |
//|  Streams this account to the Suho backend and executes its       |
//|  signals: plain MQL5, no DLL. See clients/mql5/README.md.        |
//+------------------------------------------------------------------+
#property copyright   "suho-mt5 contributors, Apache-2.0"
#property version     "1.00"
#property description "Streams quotes, account snapshots, heartbeats and order events to the Suho gateway (API_GATEWAY_URL) and executes the signals it sends."
#property description "Add the gateway's host to Tools > Options > Expert Advisors > Allow WebRequest for listed URL, and allow algorithmic trading."

#include <Trade\Trade.mqh>
#include <Suho\Session.mqh>

#define SUHO_EA_VERSION "SuhoBridge-1.00"

input string API_GATEWAY_URL   = "tcp://127.0.0.1:8001"; // Gateway: tcp://host:port or tls://host:port
input string ACCOUNT_ID        = "";                     // Account id (suho-mt5 account create)
input string API_KEY           = "";                     // API key (printed once by account create)
input string SYMBOLS           = "";                     // Symbols to stream, comma-separated (empty: the chart's)
input int    QUOTES_PER_SECOND = 10;                     // Quotes a second per symbol, at most (0: none)
input int    SNAPSHOT_SECONDS  = 30;                     // Account snapshot every N seconds
input int    HEARTBEAT_SECONDS = 30;                     // Heartbeat every N seconds
input bool   EXECUTE_SIGNALS   = true;                   // Execute the backend's signals
input ulong  MAGIC_NUMBER      = 20241125;               // Magic number of the EA's orders
input int    DEVIATION_POINTS  = 20;                     // Largest slippage accepted, in points
input double MAX_VOLUME        = 1.0;                    // Largest volume of one signal, in lots (0: no limit)
input int    TIMER_MS          = 50;                     // How often the connection is served, in ms

//+------------------------------------------------------------------+
//| The session, with the EA's answers to what the backend sends      |
//+------------------------------------------------------------------+
class CBridgeSession : public CSuhoSession
  {
protected:
   virtual void      OnWelcome(const ulong last_accepted);
   virtual bool      OnSignal(const SSuhoRecord &signal);
   virtual bool      OnCommand(const SSuhoRecord &command);
   virtual bool      OnConfig(const SSuhoRecord &config);
   virtual void      OnError(const SSuhoRecord &error);
   virtual void      OnClosed(const int code, const string detail);
   virtual void      OnKeepalive(void);
   virtual void      Log(const string text);
  };

CBridgeSession g_session;
CTrade         g_trade;

string g_symbols[];          // the symbols streamed
long   g_last_tick_msc[];    // time of the last tick sent, per symbol
ulong  g_last_quote_ms[];    // GetTickCount64() of the last quote sent, per symbol
int    g_quotes_per_second;  // the inputs, as CONFIG may change them
int    g_snapshot_seconds;
int    g_heartbeat_seconds;
double g_max_volume;
int    g_deviation_points;
bool   g_execute;
bool   g_paused;             // COMMAND PAUSE_TRADING; kept in a terminal global variable
ulong  g_next_snapshot_ms;
ulong  g_next_heartbeat_ms;
ulong  g_next_clock_ms;
int    g_last_state = -1;
int    g_errors = 0;             // ERRORs received from the gateway
int    g_last_error = 0;

string PausedVariable(void) { return "SuhoPaused_" + ACCOUNT_ID; }

//+------------------------------------------------------------------+
//| Symbols                                                          |
//+------------------------------------------------------------------+
bool LoadSymbols(void)
  {
   string names[];
   int n = 0;
   if(StringLen(SYMBOLS) == 0)
     {
      ArrayResize(names, 1);
      names[0] = _Symbol;
      n = 1;
     }
   else
      n = StringSplit(SYMBOLS, ',', names);
   ArrayResize(g_symbols, 0);
   for(int i = 0; i < n; i++)
     {
      string name = names[i];
      StringTrimLeft(name);
      StringTrimRight(name);
      if(StringLen(name) == 0)
         continue;
      // docs/protocol.md 1.2: never transliterate or cut a symbol; skip it and say so
      if(!SuhoTextFits(name, 16, false))
        {
         Print("SuhoBridge: symbol \"", name, "\" cannot be sent (more than 16 characters, ",
               "or characters outside printable ASCII): skipped");
         continue;
        }
      if(!SymbolSelect(name, true))
        {
         Print("SuhoBridge: symbol ", name, " is not offered by this broker: skipped");
         continue;
        }
      int k = ArraySize(g_symbols);
      ArrayResize(g_symbols, k + 1);
      g_symbols[k] = name;
     }
   int count = ArraySize(g_symbols);
   ArrayResize(g_last_tick_msc, count);
   ArrayResize(g_last_quote_ms, count);
   ArrayInitialize(g_last_tick_msc, 0);
   ArrayInitialize(g_last_quote_ms, 0);
   return count > 0;
  }

//+------------------------------------------------------------------+
//| What the EA sends                                                |
//+------------------------------------------------------------------+
void SendQuotes(void)
  {
   if(g_quotes_per_second <= 0)
      return;
   ulong now = GetTickCount64();
   ulong every = (ulong)(1000 / g_quotes_per_second);
   for(int i = 0; i < ArraySize(g_symbols); i++)
     {
      MqlTick tick;
      if(!SymbolInfoTick(g_symbols[i], tick) || tick.time_msc == g_last_tick_msc[i])
         continue;
      if(g_last_quote_ms[i] != 0 && now - g_last_quote_ms[i] < every)
         continue;
      SSuhoRecord quote;
      if(!SuhoBuildQuote(quote, g_symbols[i], tick))
         continue;
      if(g_session.Send(quote))
        {
         g_last_tick_msc[i] = tick.time_msc;
         g_last_quote_ms[i] = now;
        }
     }
  }

void SendSnapshot(void)
  {
   SSuhoRecord snapshot;
   if(SuhoBuildSnapshot(snapshot))
      g_session.Send(snapshot);
   else
      Print("SuhoBridge: the account snapshot cannot be sent (currency ",
            AccountInfoString(ACCOUNT_CURRENCY), ")");
   g_next_snapshot_ms = GetTickCount64() + (ulong)g_snapshot_seconds * 1000;
  }

void SendHeartbeat(void)
  {
   SSuhoRecord heartbeat;
   if(SuhoBuildHeartbeat(heartbeat, SUHO_EA_VERSION))
      g_session.Send(heartbeat);
   g_next_heartbeat_ms = GetTickCount64() + (ulong)g_heartbeat_seconds * 1000;
  }

// Every open position and pending order as an ORDER_EVENT (COMMAND RESYNC_ORDERS).
void SendAllOrders(void)
  {
   SSuhoRecord event;
   for(int i = PositionsTotal() - 1; i >= 0; i--)
     {
      ulong ticket = PositionGetTicket(i);
      if(ticket != 0 && SuhoBuildPositionEvent(event, ticket))
         g_session.Send(event);
     }
   for(int i = OrdersTotal() - 1; i >= 0; i--)
     {
      ulong ticket = OrderGetTicket(i);
      if(ticket != 0 && SuhoBuildPendingOrderEvent(event, ticket))
         g_session.Send(event);
     }
  }

void SendExecution(const SSuhoRecord &signal, const ulong ticket, const double price,
                   const double requested, const uint retcode)
  {
   SSuhoRecord report;
   SuhoRecordInit(report, SUHO_MESSAGE_TYPE_EXECUTION_REPORT);
   report.u[SUHO_F_TIMESTAMP_US] = (ulong)SuhoNowUs();
   uchar id[16];
   SuhoGetUuid(signal, SUHO_F_SIGNAL_SIGNAL_ID, id);
   SuhoSetUuid(report, SUHO_F_EXECUTION_REPORT_SIGNAL_ID, id);
   report.u[SUHO_F_EXECUTION_REPORT_TICKET] = ticket;
   report.u[SUHO_F_EXECUTION_REPORT_RESULT_CODE] = retcode;
   if(price > 0)
     {
      SuhoSetPrice(report, SUHO_F_EXECUTION_REPORT_ACTUAL_ENTRY_PRICE, price);
      SuhoSetPrice(report, SUHO_F_EXECUTION_REPORT_SLIPPAGE, price - requested);
     }
   g_session.Send(report);
  }

// A signal not executed: an ERROR for the log, and an EXECUTION_REPORT whose result code says
// why (the backend marks the signal rejected).
void Refuse(const SSuhoRecord &signal, const int error_code, const uint retcode,
            const string why)
  {
   Print("SuhoBridge: signal ", signal.u[SUHO_F_SEQUENCE], " for ",
         signal.text[SUHO_F_SIGNAL_SYMBOL], " not executed: ", why);
   g_session.SendError(signal.u[SUHO_F_SEQUENCE], error_code, why);
   SendExecution(signal, 0, 0, 0, retcode);
  }

//+------------------------------------------------------------------+
//| Signals                                                          |
//+------------------------------------------------------------------+
// The volume of a signal in lots, or 0 if the symbol cannot trade it.
double SignalLots(const string symbol, const ulong volume)
  {
   double lots = SuhoFromFixed((long)volume, SUHO_PRICE_SCALE);
   double low = SymbolInfoDouble(symbol, SYMBOL_VOLUME_MIN);
   double high = SymbolInfoDouble(symbol, SYMBOL_VOLUME_MAX);
   double step = SymbolInfoDouble(symbol, SYMBOL_VOLUME_STEP);
   if(lots < low || lots > high || (g_max_volume > 0 && lots > g_max_volume))
      return 0;
   if(step > 0 && MathAbs(lots / step - MathRound(lots / step)) > 1e-6)
      return 0;
   return lots;
  }

void ExecuteSignal(const SSuhoRecord &signal)
  {
   string symbol = signal.text[SUHO_F_SIGNAL_SYMBOL];
   int action = (int)signal.u[SUHO_F_SIGNAL_ACTION];
   long expires = (long)signal.u[SUHO_F_SIGNAL_EXPIRES_AT_US];
   if(expires != 0 && SuhoNowUs() > expires)
     {
      Refuse(signal, SUHO_ERROR_CODE_SIGNAL_EXPIRED, TRADE_RETCODE_TIMEOUT, "signal expired");
      return;
     }
   if(!g_execute || g_paused)
     {
      Refuse(signal, SUHO_ERROR_CODE_TRADE_REJECTED, TRADE_RETCODE_TRADE_DISABLED,
             g_paused ? "trading paused by the backend" : "EXECUTE_SIGNALS is off");
      return;
     }
   if(!TerminalInfoInteger(TERMINAL_TRADE_ALLOWED) || !MQLInfoInteger(MQL_TRADE_ALLOWED))
     {
      Refuse(signal, SUHO_ERROR_CODE_TRADE_REJECTED, TRADE_RETCODE_CLIENT_DISABLES_AT,
             "algorithmic trading is not allowed in the terminal or for this EA");
      return;
     }
   if(!AccountInfoInteger(ACCOUNT_TRADE_ALLOWED) || !AccountInfoInteger(ACCOUNT_TRADE_EXPERT))
     {
      Refuse(signal, SUHO_ERROR_CODE_TRADE_REJECTED, TRADE_RETCODE_TRADE_DISABLED,
             "the account may not trade, or not with an EA");
      return;
     }
   if(!SymbolSelect(symbol, true))
     {
      Refuse(signal, SUHO_ERROR_CODE_TRADE_REJECTED, TRADE_RETCODE_INVALID,
             "unknown symbol " + symbol);
      return;
     }
   if(SymbolInfoInteger(symbol, SYMBOL_TRADE_MODE) == SYMBOL_TRADE_MODE_DISABLED)
     {
      Refuse(signal, SUHO_ERROR_CODE_TRADE_REJECTED, TRADE_RETCODE_TRADE_DISABLED,
             "trading is disabled for " + symbol);
      return;
     }
   double sl = SuhoFromFixed((long)signal.u[SUHO_F_SIGNAL_STOP_LOSS], SUHO_PRICE_SCALE);
   double tp = SuhoFromFixed((long)signal.u[SUHO_F_SIGNAL_TAKE_PROFIT], SUHO_PRICE_SCALE);
   g_trade.SetExpertMagicNumber(MAGIC_NUMBER);
   g_trade.SetDeviationInPoints((ulong)g_deviation_points);
   g_trade.SetTypeFillingBySymbol(symbol);
   if(action == SUHO_ACTION_BUY || action == SUHO_ACTION_SELL)
     {
      double lots = SignalLots(symbol, signal.u[SUHO_F_SIGNAL_VOLUME]);
      if(lots <= 0)
        {
         Refuse(signal, SUHO_ERROR_CODE_TRADE_REJECTED, TRADE_RETCODE_INVALID_VOLUME,
                "volume outside the symbol's limits or MAX_VOLUME");
         return;
        }
      bool buy = (action == SUHO_ACTION_BUY);
      double entry = SuhoFromFixed((long)signal.u[SUHO_F_SIGNAL_ENTRY_PRICE], SUHO_PRICE_SCALE);
      double requested = (entry > 0) ? entry
                         : SymbolInfoDouble(symbol, buy ? SYMBOL_ASK : SYMBOL_BID);
      string comment = "suho " + IntegerToString((long)signal.u[SUHO_F_SEQUENCE]);
      bool done = buy ? g_trade.Buy(lots, symbol, 0, sl, tp, comment)
                      : g_trade.Sell(lots, symbol, 0, sl, tp, comment);
      double price = g_trade.ResultPrice();
      if(price <= 0 && HistoryDealSelect(g_trade.ResultDeal()))
         price = HistoryDealGetDouble(g_trade.ResultDeal(), DEAL_PRICE);
      Print("SuhoBridge: signal ", signal.u[SUHO_F_SEQUENCE], ": ", buy ? "buy " : "sell ",
            DoubleToString(lots, 2), " ", symbol, done ? " done at " : " refused, result ",
            done ? DoubleToString(price, (int)SymbolInfoInteger(symbol, SYMBOL_DIGITS))
                 : IntegerToString(g_trade.ResultRetcode()));
      SendExecution(signal, done ? g_trade.ResultOrder() : 0, done ? price : 0, requested,
                    g_trade.ResultRetcode());
      return;
     }
   // CLOSE and MODIFY act on this EA's positions in the symbol.
   uint retcode = TRADE_RETCODE_POSITION_CLOSED;  // none to act on
   ulong ticket = 0;
   double price = 0;
   double left = SuhoFromFixed((long)signal.u[SUHO_F_SIGNAL_VOLUME], SUHO_PRICE_SCALE);
   for(int i = PositionsTotal() - 1; i >= 0; i--)
     {
      ulong position = PositionGetTicket(i);
      if(position == 0 || PositionGetString(POSITION_SYMBOL) != symbol ||
         (ulong)PositionGetInteger(POSITION_MAGIC) != MAGIC_NUMBER)
         continue;
      bool done;
      if(action == SUHO_ACTION_MODIFY)
         done = g_trade.PositionModify(position, sl, tp);
      else
        {
         double volume = PositionGetDouble(POSITION_VOLUME);
         if(signal.u[SUHO_F_SIGNAL_VOLUME] == 0 || left >= volume)
            done = g_trade.PositionClose(position);
         else
            done = (left > 0) && g_trade.PositionClosePartial(position, left);
         if(done)
            left -= volume;
        }
      retcode = g_trade.ResultRetcode();
      if(done)
        {
         ticket = position;
         price = g_trade.ResultPrice();
        }
     }
   SendExecution(signal, ticket, price, price, retcode);
  }

//+------------------------------------------------------------------+
//| Commands and settings                                            |
//+------------------------------------------------------------------+
void ClosePositions(const string symbol, const ulong only_ticket, const double volume)
  {
   for(int i = PositionsTotal() - 1; i >= 0; i--)
     {
      ulong position = PositionGetTicket(i);
      if(position == 0 || (only_ticket != 0 && position != only_ticket))
         continue;
      if(StringLen(symbol) > 0 && PositionGetString(POSITION_SYMBOL) != symbol)
         continue;
      bool done = (volume > 0 && volume < PositionGetDouble(POSITION_VOLUME))
                  ? g_trade.PositionClosePartial(position, volume)
                  : g_trade.PositionClose(position);
      Print("SuhoBridge: closing position ", position, done ? ": done" : ": refused, result ",
            done ? "" : IntegerToString(g_trade.ResultRetcode()));
     }
  }

void ApplyCommand(const SSuhoRecord &command)
  {
   int code = (int)command.u[SUHO_F_COMMAND_COMMAND];
   string symbol = command.text[SUHO_F_COMMAND_SYMBOL];
   double volume = SuhoFromFixed((long)command.u[SUHO_F_COMMAND_VOLUME], SUHO_PRICE_SCALE);
   Print("SuhoBridge: command ", code, " from the backend");
   switch(code)
     {
      case SUHO_COMMAND_CODE_SEND_SNAPSHOT:
         SendSnapshot();
         break;
      case SUHO_COMMAND_CODE_RESYNC_ORDERS:
         SendAllOrders();
         break;
      case SUHO_COMMAND_CODE_CLOSE_POSITION:
         if(command.u[SUHO_F_COMMAND_TICKET] != 0)
            ClosePositions(symbol, command.u[SUHO_F_COMMAND_TICKET], volume);
         break;
      case SUHO_COMMAND_CODE_CLOSE_ALL:
         ClosePositions(symbol, 0, 0);
         break;
      case SUHO_COMMAND_CODE_PAUSE_TRADING:
      case SUHO_COMMAND_CODE_RESUME_TRADING:
         g_paused = (code == SUHO_COMMAND_CODE_PAUSE_TRADING);
         GlobalVariableSet(PausedVariable(), g_paused ? 1.0 : 0.0);
         Print("SuhoBridge: trading ", g_paused ? "paused" : "resumed", " by the backend");
         break;
      case SUHO_COMMAND_CODE_DISCONNECT:
         g_session.Reconnect(60000);
         break;
     }
  }

void ApplyConfig(const SSuhoRecord &config)
  {
   string key = config.text[SUHO_F_CONFIG_KEY];
   double value = SuhoFromFixed((long)config.u[SUHO_F_CONFIG_VALUE],
                                (int)config.u[SUHO_F_CONFIG_DECIMALS]);
   if(key == "quotes_per_s")
      g_quotes_per_second = (int)MathMax(0, MathMin(1000, value));
   else
      if(key == "snapshot_s")
         g_snapshot_seconds = (int)MathMax(1, value);
      else
         if(key == "heartbeat_s")
            g_heartbeat_seconds = (int)MathMax(1, value);
         else
            if(key == "max_volume")
               g_max_volume = MathMax(0, value);
            else
               if(key == "deviation_pts")
                  g_deviation_points = (int)MathMax(0, value);
               else
                  if(key == "execute")
                     g_execute = (value != 0);
                  else
                    {
                     Print("SuhoBridge: unknown setting ", key, " ignored");
                     return;
                    }
   Print("SuhoBridge: setting ", key, " = ", DoubleToString(value, 4));
  }

//+------------------------------------------------------------------+
//| The session's hooks                                              |
//+------------------------------------------------------------------+
void CBridgeSession::OnWelcome(const ulong last_accepted)
  {
   Print("SuhoBridge: connected; the backend has stored everything up to ", last_accepted);
   // the backend learns the account's state at once, not in 30 s
   SendSnapshot();
   SendHeartbeat();
  }

bool CBridgeSession::OnSignal(const SSuhoRecord &signal)
  {
   uchar id[16];
   SuhoGetUuid(signal, SUHO_F_SIGNAL_SIGNAL_ID, id);
   if(WasExecuted(id))
      return true;  // the same signal again: executed at most once
   MarkExecuted(id);  // before trading: a crash in between must not execute it twice
   ExecuteSignal(signal);
   return true;
  }

bool CBridgeSession::OnCommand(const SSuhoRecord &command)
  {
   ApplyCommand(command);
   return true;
  }

bool CBridgeSession::OnConfig(const SSuhoRecord &config)
  {
   ApplyConfig(config);
   return true;
  }

void CBridgeSession::OnError(const SSuhoRecord &error)
  {
   // the session logged the detail; a refused packet is a bug of the EA or of its symbols
   g_errors++;
   g_last_error = (int)error.u[SUHO_F_ERROR_CODE];
  }

void CBridgeSession::OnClosed(const int code, const string detail)
  {
   Print("SuhoBridge: disconnected (", code, " ", detail, ")");
  }

void CBridgeSession::OnKeepalive(void)
  {
   SendHeartbeat();
  }

void CBridgeSession::Log(const string text)
  {
   Print("SuhoBridge: ", text);
  }

void ShowState(void)
  {
   int state = g_session.State();
   if(state == g_last_state)
      return;
   g_last_state = state;
   string what = "connecting";
   if(state == SUHO_SESSION_OPEN)
      what = "connected";
   else
      if(state == SUHO_SESSION_STOPPED)
         what = "stopped (see the Experts log)";
   Comment(SUHO_EA_VERSION, ": ", what, " to ", API_GATEWAY_URL,
           (g_errors > 0) ? ", packets refused: " + IntegerToString(g_errors) + " (last error "
                            + IntegerToString(g_last_error) + ")" : "");
  }

//+------------------------------------------------------------------+
//| Events                                                           |
//+------------------------------------------------------------------+
int OnInit(void)
  {
   if(MQLInfoInteger(MQL_TESTER))
     {
      Print("SuhoBridge: network functions do not work in the strategy tester");
      return INIT_FAILED;
     }
   SuhoInit();
   SuhoClockInit();
   if(!g_session.Configure(API_GATEWAY_URL, ACCOUNT_ID, API_KEY, "suho_" + ACCOUNT_ID + ".state"))
      return INIT_PARAMETERS_INCORRECT;
   if(!LoadSymbols())
     {
      Print("SuhoBridge: no symbol to stream (SYMBOLS: \"", SYMBOLS, "\")");
      return INIT_PARAMETERS_INCORRECT;
     }
   g_quotes_per_second = QUOTES_PER_SECOND;
   g_snapshot_seconds = (SNAPSHOT_SECONDS > 0) ? SNAPSHOT_SECONDS : 30;
   g_heartbeat_seconds = (HEARTBEAT_SECONDS > 0) ? HEARTBEAT_SECONDS : 30;
   g_max_volume = MAX_VOLUME;
   g_deviation_points = DEVIATION_POINTS;
   g_execute = EXECUTE_SIGNALS;
   g_paused = GlobalVariableCheck(PausedVariable()) && GlobalVariableGet(PausedVariable()) != 0;
   if(!TerminalInfoInteger(TERMINAL_TRADE_ALLOWED))
      Print("SuhoBridge: \"Algo Trading\" is off in the terminal: signals will be refused");
   g_next_snapshot_ms = 0;
   g_next_heartbeat_ms = 0;
   g_next_clock_ms = GetTickCount64() + 3600000;
   g_session.Start();
   if(!EventSetMillisecondTimer(TIMER_MS > 0 ? TIMER_MS : 50))
     {
      Print("SuhoBridge: cannot set the timer");
      return INIT_FAILED;
     }
   Print(SUHO_EA_VERSION, ": streaming ", ArraySize(g_symbols), " symbol(s) of account ",
         ACCOUNT_ID, " to ", API_GATEWAY_URL, g_paused ? " (trading paused)" : "");
   ShowState();
   return INIT_SUCCEEDED;
  }

void OnDeinit(const int reason)
  {
   EventKillTimer();
   g_session.Stop();
   Comment("");
   Print("SuhoBridge: stopped (reason ", reason, "), ", g_session.OutboxSize(),
         " packet(s) kept to resend");
  }

void OnTimer(void)
  {
   g_session.Poll();
   if(g_session.IsOpen())
     {
      ulong now = GetTickCount64();
      SendQuotes();
      if(now >= g_next_snapshot_ms)
         SendSnapshot();
      if(now >= g_next_heartbeat_ms)
         SendHeartbeat();
     }
   if(GetTickCount64() >= g_next_clock_ms)
     {
      SuhoClockInit(false);  // follow the computer's clock (NTP) every hour
      g_next_clock_ms = GetTickCount64() + 3600000;
     }
   ShowState();
  }

void OnTick(void)
  {
   if(g_session.IsOpen())
      SendQuotes();
  }

void OnTradeTransaction(const MqlTradeTransaction &trans, const MqlTradeRequest &request,
                        const MqlTradeResult &result)
  {
   if(trans.type == TRADE_TRANSACTION_REQUEST && request.magic == MAGIC_NUMBER &&
      result.retcode != TRADE_RETCODE_DONE && result.retcode != TRADE_RETCODE_PLACED)
      Print("SuhoBridge: the trade server answered ", result.retcode, " to a request for ",
            request.symbol);
   SSuhoRecord event;
   if(SuhoBuildOrderEvent(event, trans))
      g_session.Send(event);  // kept in the outbox while disconnected
  }
//+------------------------------------------------------------------+
