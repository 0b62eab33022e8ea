// A stand-in for the MetaTrader 5 terminal, for the g++ build of the EA (ea_host.cpp).
//
// It offers the terminal functions SuhoBridge.mq5 and Protocol.mqh's builders call, with
// MQL5's names, enumerations and return values, over a small simulated market: symbols whose
// prices take a random walk, one hedging account, positions, deals and orders opened and
// closed by a CTrade that fills every valid market request at the current price, and the
// trade transactions MetaTrader would report for them (ORDER_ADD, DEAL_ADD, ORDER_DELETE,
// HISTORY_ADD, POSITION). The trade server's clock runs two hours ahead of UTC, as many
// brokers' do, so that a mistake in the UTC conversion of docs/protocol.md 1.1 shows.
//
// It is not MetaTrader: no broker rules beyond volume limits and the "allow trading" flags,
// no requotes, no partial fills, no pending orders. What it is good for is in
// clients/mql5/README.md ("How it is tested").
#ifndef SUHO_MQL5_TERMINAL_H
#define SUHO_MQL5_TERMINAL_H

#include "mql5.h"

#include <map>

// --- enumerations, with MQL5's names and values -------------------------------------------
enum ENUM_SYMBOL_INFO_DOUBLE {
    SYMBOL_BID, SYMBOL_ASK, SYMBOL_LAST, SYMBOL_POINT, SYMBOL_VOLUME_MIN, SYMBOL_VOLUME_MAX,
    SYMBOL_VOLUME_STEP, SYMBOL_TRADE_CONTRACT_SIZE
};
enum ENUM_SYMBOL_INFO_INTEGER { SYMBOL_DIGITS, SYMBOL_SPREAD, SYMBOL_TRADE_MODE, SYMBOL_SELECT };
enum ENUM_SYMBOL_TRADE_MODE {
    SYMBOL_TRADE_MODE_DISABLED, SYMBOL_TRADE_MODE_LONGONLY, SYMBOL_TRADE_MODE_SHORTONLY,
    SYMBOL_TRADE_MODE_CLOSEONLY, SYMBOL_TRADE_MODE_FULL
};
enum ENUM_ACCOUNT_INFO_DOUBLE {
    ACCOUNT_BALANCE, ACCOUNT_CREDIT, ACCOUNT_PROFIT, ACCOUNT_EQUITY, ACCOUNT_MARGIN,
    ACCOUNT_MARGIN_FREE, ACCOUNT_MARGIN_LEVEL
};
enum ENUM_ACCOUNT_INFO_INTEGER {
    ACCOUNT_LOGIN, ACCOUNT_LEVERAGE, ACCOUNT_TRADE_ALLOWED, ACCOUNT_TRADE_EXPERT,
    ACCOUNT_MARGIN_MODE
};
enum ENUM_ACCOUNT_INFO_STRING { ACCOUNT_CURRENCY, ACCOUNT_SERVER, ACCOUNT_COMPANY, ACCOUNT_NAME };
enum ENUM_ACCOUNT_MARGIN_MODE {
    ACCOUNT_MARGIN_MODE_RETAIL_NETTING, ACCOUNT_MARGIN_MODE_EXCHANGE,
    ACCOUNT_MARGIN_MODE_RETAIL_HEDGING
};
enum ENUM_TERMINAL_INFO_INTEGER {
    TERMINAL_BUILD, TERMINAL_CONNECTED, TERMINAL_TRADE_ALLOWED, TERMINAL_PING_LAST
};
enum ENUM_MQL_INFO_INTEGER { MQL_TRADE_ALLOWED, MQL_TESTER, MQL_DLLS_ALLOWED };
enum ENUM_ORDER_TYPE {
    ORDER_TYPE_BUY, ORDER_TYPE_SELL, ORDER_TYPE_BUY_LIMIT, ORDER_TYPE_SELL_LIMIT,
    ORDER_TYPE_BUY_STOP, ORDER_TYPE_SELL_STOP, ORDER_TYPE_BUY_STOP_LIMIT,
    ORDER_TYPE_SELL_STOP_LIMIT, ORDER_TYPE_CLOSE_BY
};
enum ENUM_ORDER_STATE {
    ORDER_STATE_STARTED, ORDER_STATE_PLACED, ORDER_STATE_CANCELED, ORDER_STATE_PARTIAL,
    ORDER_STATE_FILLED, ORDER_STATE_REJECTED, ORDER_STATE_EXPIRED, ORDER_STATE_REQUEST_ADD,
    ORDER_STATE_REQUEST_MODIFY, ORDER_STATE_REQUEST_CANCEL
};
enum ENUM_DEAL_TYPE {
    DEAL_TYPE_BUY, DEAL_TYPE_SELL, DEAL_TYPE_BALANCE, DEAL_TYPE_CREDIT, DEAL_TYPE_CHARGE,
    DEAL_TYPE_CORRECTION, DEAL_TYPE_BONUS, DEAL_TYPE_COMMISSION, DEAL_TYPE_COMMISSION_DAILY,
    DEAL_TYPE_COMMISSION_MONTHLY, DEAL_TYPE_COMMISSION_AGENT_DAILY,
    DEAL_TYPE_COMMISSION_AGENT_MONTHLY, DEAL_TYPE_INTEREST, DEAL_TYPE_BUY_CANCELED,
    DEAL_TYPE_SELL_CANCELED, DEAL_DIVIDEND, DEAL_DIVIDEND_FRANKED, DEAL_TAX
};
enum ENUM_DEAL_ENTRY { DEAL_ENTRY_IN, DEAL_ENTRY_OUT, DEAL_ENTRY_INOUT, DEAL_ENTRY_OUT_BY };
enum ENUM_ORDER_TYPE_TIME {
    ORDER_TIME_GTC, ORDER_TIME_DAY, ORDER_TIME_SPECIFIED, ORDER_TIME_SPECIFIED_DAY
};
enum ENUM_POSITION_TYPE { POSITION_TYPE_BUY, POSITION_TYPE_SELL };
enum ENUM_TRADE_TRANSACTION_TYPE {
    TRADE_TRANSACTION_ORDER_ADD, TRADE_TRANSACTION_ORDER_UPDATE, TRADE_TRANSACTION_ORDER_DELETE,
    TRADE_TRANSACTION_DEAL_ADD, TRADE_TRANSACTION_DEAL_UPDATE, TRADE_TRANSACTION_DEAL_DELETE,
    TRADE_TRANSACTION_HISTORY_ADD, TRADE_TRANSACTION_HISTORY_UPDATE,
    TRADE_TRANSACTION_HISTORY_DELETE, TRADE_TRANSACTION_POSITION, TRADE_TRANSACTION_REQUEST
};
enum ENUM_DEAL_PROPERTY_INTEGER {
    DEAL_TICKET, DEAL_ORDER, DEAL_TIME, DEAL_TIME_MSC, DEAL_TYPE, DEAL_ENTRY, DEAL_MAGIC,
    DEAL_POSITION_ID
};
enum ENUM_DEAL_PROPERTY_DOUBLE {
    DEAL_VOLUME, DEAL_PRICE, DEAL_COMMISSION, DEAL_SWAP, DEAL_PROFIT, DEAL_SL, DEAL_TP
};
enum ENUM_DEAL_PROPERTY_STRING { DEAL_SYMBOL, DEAL_COMMENT };
enum ENUM_ORDER_PROPERTY_INTEGER {
    ORDER_TICKET, ORDER_TIME_SETUP_MSC, ORDER_TYPE, ORDER_STATE, ORDER_MAGIC, ORDER_POSITION_ID
};
enum ENUM_ORDER_PROPERTY_DOUBLE {
    ORDER_VOLUME_INITIAL, ORDER_VOLUME_CURRENT, ORDER_PRICE_OPEN, ORDER_SL, ORDER_TP
};
enum ENUM_ORDER_PROPERTY_STRING { ORDER_SYMBOL, ORDER_COMMENT };
enum ENUM_POSITION_PROPERTY_INTEGER {
    POSITION_TICKET, POSITION_TIME_MSC, POSITION_TYPE, POSITION_MAGIC, POSITION_IDENTIFIER
};
enum ENUM_POSITION_PROPERTY_DOUBLE {
    POSITION_VOLUME, POSITION_PRICE_OPEN, POSITION_SL, POSITION_TP, POSITION_PRICE_CURRENT,
    POSITION_SWAP, POSITION_PROFIT
};
enum ENUM_POSITION_PROPERTY_STRING { POSITION_SYMBOL, POSITION_COMMENT };

#define INIT_SUCCEEDED 0
#define INIT_FAILED 1
#define INIT_PARAMETERS_INCORRECT 32767
#define REASON_PROGRAM 0
#define REASON_REMOVE 1
#define REASON_RECOMPILE 2
#define REASON_CHARTCHANGE 3
#define REASON_CHARTCLOSE 4
#define REASON_PARAMETERS 5
#define REASON_ACCOUNT 6

#define TRADE_RETCODE_PLACED 10008
#define TRADE_RETCODE_DONE 10009
#define TRADE_RETCODE_DONE_PARTIAL 10010
#define TRADE_RETCODE_REJECT 10006
#define TRADE_RETCODE_TIMEOUT 10012
#define TRADE_RETCODE_INVALID 10013
#define TRADE_RETCODE_INVALID_VOLUME 10014
#define TRADE_RETCODE_INVALID_PRICE 10015
#define TRADE_RETCODE_INVALID_STOPS 10016
#define TRADE_RETCODE_TRADE_DISABLED 10017
#define TRADE_RETCODE_MARKET_CLOSED 10018
#define TRADE_RETCODE_NO_MONEY 10019
#define TRADE_RETCODE_CLIENT_DISABLES_AT 10027
#define TRADE_RETCODE_POSITION_CLOSED 10036

// --- structures -----------------------------------------------------------------------------
struct MqlTick {
    datetime time = 0;
    double bid = 0, ask = 0, last = 0;
    ulong volume = 0;
    long time_msc = 0;
    uint flags = 0;
    double volume_real = 0;
};
struct MqlTradeTransaction {
    ulong deal = 0, order = 0;
    string symbol;
    ENUM_TRADE_TRANSACTION_TYPE type = TRADE_TRANSACTION_REQUEST;
    ENUM_ORDER_TYPE order_type = ORDER_TYPE_BUY;
    ENUM_ORDER_STATE order_state = ORDER_STATE_STARTED;
    ENUM_DEAL_TYPE deal_type = DEAL_TYPE_BUY;
    ENUM_ORDER_TYPE_TIME time_type = ORDER_TIME_GTC;
    datetime time_expiration = 0;
    double price = 0, price_trigger = 0, price_sl = 0, price_tp = 0, volume = 0;
    ulong position = 0, position_by = 0;
};
struct MqlTradeRequest {
    ulong magic = 0, order = 0;
    string symbol;
    double volume = 0, price = 0, sl = 0, tp = 0;
};
struct MqlTradeResult {
    uint retcode = 0;
    ulong deal = 0, order = 0;
    double volume = 0, price = 0;
};

// --- the simulated market and account ---------------------------------------------------------
namespace fake {

struct Symbol {
    double bid, ask, point, vol_min, vol_max, vol_step, contract;
    int digits;
    ENUM_SYMBOL_TRADE_MODE mode = SYMBOL_TRADE_MODE_FULL;
    long time_msc = 0;
    bool selected = true;
};
struct Position {
    ulong ticket;
    std::string symbol;
    ENUM_POSITION_TYPE type;
    double volume, price, sl, tp;
    ulong magic;
    long time_msc;
};
struct Deal {
    ulong ticket, order, position;
    std::string symbol;
    ENUM_DEAL_TYPE type;
    ENUM_DEAL_ENTRY entry;
    double volume, price, profit, commission, swap, sl, tp;
    ulong magic;
    long time_msc;
};
struct Order {
    ulong ticket, position;
    std::string symbol;
    ENUM_ORDER_TYPE type;
    ENUM_ORDER_STATE state;
    double volume, price, sl, tp;
    ulong magic;
};

struct Terminal {
    std::map<std::string, Symbol> symbols;
    std::vector<Position> positions;
    std::vector<Deal> deals;
    std::vector<Order> history_orders;
    std::vector<MqlTradeTransaction> transactions; // not yet delivered to OnTradeTransaction
    double balance = 10000.0;
    long leverage = 100;
    std::string currency = "USD";
    bool connected = true, terminal_trade_allowed = true, ea_trade_allowed = true;
    bool account_trade_allowed = true;
    long server_offset_s = 7200; // the trade server's clock: UTC+2
    ulong next_ticket = 5000000;
    uint timer_ms = 0;
    std::string comment;
    std::map<std::string, double> globals;
    std::string chart_symbol = "EURUSD";
    unsigned seed = 12345;

    long server_ms() const
    {
        return (long)std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch()).count() +
               server_offset_s * 1000;
    }
    void add_symbol(const std::string &name, double bid, int digits)
    {
        Symbol s;
        s.bid = bid;
        s.point = std::pow(10.0, -digits);
        s.ask = bid + 12 * s.point;
        s.digits = digits;
        s.vol_min = 0.01;
        s.vol_max = 50;
        s.vol_step = 0.01;
        s.contract = 100000;
        s.time_msc = server_ms();
        symbols[name] = s;
    }
    // One step of the random walk: every symbol moves; returns whether the chart's did.
    bool step()
    {
        bool chart = false;
        for (auto &kv : symbols) {
            Symbol &s = kv.second;
            seed = seed * 1103515245u + 12345u;
            int move = (int)((seed >> 16) % 7) - 3;
            if (move == 0)
                continue;
            s.bid += move * s.point;
            s.ask = s.bid + 12 * s.point;
            s.time_msc = server_ms();
            chart = chart || kv.first == chart_symbol;
        }
        return chart;
    }
    double profit_of(const Position &p) const
    {
        const Symbol &s = symbols.at(p.symbol);
        double close = p.type == POSITION_TYPE_BUY ? s.bid : s.ask;
        double diff = p.type == POSITION_TYPE_BUY ? close - p.price : p.price - close;
        return diff * p.volume * s.contract;
    }
    double equity() const
    {
        double e = balance;
        for (const auto &p : positions)
            e += profit_of(p);
        return e;
    }
    double margin() const
    {
        double m = 0;
        for (const auto &p : positions)
            m += p.volume * symbols.at(p.symbol).contract * p.price / (double)leverage;
        return m;
    }
};

inline Terminal &terminal()
{
    static Terminal t;
    return t;
}

} // namespace fake

// --- terminal functions -----------------------------------------------------------------------
inline fake::Symbol *mql_symbol(const string &name)
{
    auto &symbols = fake::terminal().symbols;
    auto it = symbols.find(name.utf8());
    return it == symbols.end() ? nullptr : &it->second;
}
inline bool SymbolSelect(const string &name, bool select)
{
    fake::Symbol *s = mql_symbol(name);
    if (!s)
        return false;
    s->selected = select;
    return true;
}
inline bool SymbolInfoTick(const string &name, MqlTick &tick)
{
    fake::Symbol *s = mql_symbol(name);
    if (!s)
        return false;
    tick.bid = s->bid;
    tick.ask = s->ask;
    tick.last = 0;
    tick.time_msc = s->time_msc;
    tick.time = (datetime)(s->time_msc / 1000);
    tick.volume = 1;
    tick.volume_real = 1.0;
    return true;
}
inline double SymbolInfoDouble(const string &name, ENUM_SYMBOL_INFO_DOUBLE prop)
{
    fake::Symbol *s = mql_symbol(name);
    if (!s)
        return 0;
    switch (prop) {
    case SYMBOL_BID: return s->bid;
    case SYMBOL_ASK: return s->ask;
    case SYMBOL_LAST: return 0;
    case SYMBOL_POINT: return s->point;
    case SYMBOL_VOLUME_MIN: return s->vol_min;
    case SYMBOL_VOLUME_MAX: return s->vol_max;
    case SYMBOL_VOLUME_STEP: return s->vol_step;
    case SYMBOL_TRADE_CONTRACT_SIZE: return s->contract;
    }
    return 0;
}
inline long SymbolInfoInteger(const string &name, ENUM_SYMBOL_INFO_INTEGER prop)
{
    fake::Symbol *s = mql_symbol(name);
    if (!s)
        return 0;
    switch (prop) {
    case SYMBOL_DIGITS: return s->digits;
    case SYMBOL_SPREAD: return (long)std::lround((s->ask - s->bid) / s->point);
    case SYMBOL_TRADE_MODE: return s->mode;
    case SYMBOL_SELECT: return s->selected;
    }
    return 0;
}
inline double AccountInfoDouble(ENUM_ACCOUNT_INFO_DOUBLE prop)
{
    const fake::Terminal &t = fake::terminal();
    double margin = t.margin(), equity = t.equity();
    switch (prop) {
    case ACCOUNT_BALANCE: return t.balance;
    case ACCOUNT_CREDIT: return 0;
    case ACCOUNT_PROFIT: return equity - t.balance;
    case ACCOUNT_EQUITY: return equity;
    case ACCOUNT_MARGIN: return margin;
    case ACCOUNT_MARGIN_FREE: return equity - margin;
    case ACCOUNT_MARGIN_LEVEL: return margin > 0 ? equity / margin * 100 : 0;
    }
    return 0;
}
inline long AccountInfoInteger(ENUM_ACCOUNT_INFO_INTEGER prop)
{
    const fake::Terminal &t = fake::terminal();
    switch (prop) {
    case ACCOUNT_LOGIN: return 5012345;
    case ACCOUNT_LEVERAGE: return t.leverage;
    case ACCOUNT_TRADE_ALLOWED: return t.account_trade_allowed;
    case ACCOUNT_TRADE_EXPERT: return t.account_trade_allowed;
    case ACCOUNT_MARGIN_MODE: return ACCOUNT_MARGIN_MODE_RETAIL_HEDGING;
    }
    return 0;
}
inline string AccountInfoString(ENUM_ACCOUNT_INFO_STRING prop)
{
    switch (prop) {
    case ACCOUNT_CURRENCY: return string(fake::terminal().currency.c_str());
    case ACCOUNT_SERVER: return string("SimBroker-Demo");
    case ACCOUNT_COMPANY: return string("SimBroker");
    case ACCOUNT_NAME: return string("Test Trader");
    }
    return string();
}
inline long TerminalInfoInteger(ENUM_TERMINAL_INFO_INTEGER prop)
{
    const fake::Terminal &t = fake::terminal();
    switch (prop) {
    case TERMINAL_BUILD: return 4410;
    case TERMINAL_CONNECTED: return t.connected;
    case TERMINAL_TRADE_ALLOWED: return t.terminal_trade_allowed;
    case TERMINAL_PING_LAST: return 23456; // microseconds, as MetaTrader reports it
    }
    return 0;
}
inline long MQLInfoInteger(ENUM_MQL_INFO_INTEGER prop)
{
    switch (prop) {
    case MQL_TRADE_ALLOWED: return fake::terminal().ea_trade_allowed;
    case MQL_TESTER: return 0;
    case MQL_DLLS_ALLOWED: return 0;
    }
    return 0;
}
inline datetime TimeTradeServer() { return (datetime)(fake::terminal().server_ms() / 1000); }
inline datetime TimeCurrent() { return TimeTradeServer(); }
inline string Symbol() { return string(fake::terminal().chart_symbol.c_str()); }
#define _Symbol (Symbol())
inline bool EventSetMillisecondTimer(int ms)
{
    fake::terminal().timer_ms = (uint)ms;
    return ms > 0;
}
inline bool EventSetTimer(int seconds) { return EventSetMillisecondTimer(seconds * 1000); }
inline void EventKillTimer() { fake::terminal().timer_ms = 0; }
template <class... A> inline void Comment(A... args)
{
    std::string line;
    using expand = int[];
    (void)expand{0, (line += mql_print_arg(args), 0)...};
    fake::terminal().comment = line;
}
inline datetime GlobalVariableSet(const string &name, double value)
{
    fake::terminal().globals[name.utf8()] = value;
    return TimeCurrent();
}
inline bool GlobalVariableCheck(const string &name)
{
    return fake::terminal().globals.count(name.utf8()) > 0;
}
inline double GlobalVariableGet(const string &name)
{
    auto &g = fake::terminal().globals;
    auto it = g.find(name.utf8());
    return it == g.end() ? 0 : it->second;
}

// Positions (the selected one: PositionGetTicket / PositionSelectByTicket).
inline const fake::Position *&mql_selected_position()
{
    static const fake::Position *p = nullptr;
    return p;
}
inline int PositionsTotal() { return (int)fake::terminal().positions.size(); }
inline ulong PositionGetTicket(int index)
{
    auto &ps = fake::terminal().positions;
    if (index < 0 || index >= (int)ps.size())
        return 0;
    mql_selected_position() = &ps[(size_t)index];
    return ps[(size_t)index].ticket;
}
inline bool PositionSelectByTicket(ulong ticket)
{
    for (auto &p : fake::terminal().positions)
        if (p.ticket == ticket) {
            mql_selected_position() = &p;
            return true;
        }
    mql_selected_position() = nullptr;
    return false;
}
inline long PositionGetInteger(ENUM_POSITION_PROPERTY_INTEGER prop)
{
    const fake::Position *p = mql_selected_position();
    if (!p)
        return 0;
    switch (prop) {
    case POSITION_TICKET:
    case POSITION_IDENTIFIER: return (long)p->ticket;
    case POSITION_TIME_MSC: return p->time_msc;
    case POSITION_TYPE: return p->type;
    case POSITION_MAGIC: return (long)p->magic;
    }
    return 0;
}
inline double PositionGetDouble(ENUM_POSITION_PROPERTY_DOUBLE prop)
{
    const fake::Position *p = mql_selected_position();
    if (!p)
        return 0;
    const fake::Symbol &s = fake::terminal().symbols.at(p->symbol);
    switch (prop) {
    case POSITION_VOLUME: return p->volume;
    case POSITION_PRICE_OPEN: return p->price;
    case POSITION_SL: return p->sl;
    case POSITION_TP: return p->tp;
    case POSITION_PRICE_CURRENT: return p->type == POSITION_TYPE_BUY ? s.bid : s.ask;
    case POSITION_SWAP: return 0;
    case POSITION_PROFIT: return fake::terminal().profit_of(*p);
    }
    return 0;
}
inline string PositionGetString(ENUM_POSITION_PROPERTY_STRING prop)
{
    const fake::Position *p = mql_selected_position();
    if (!p || prop != POSITION_SYMBOL)
        return string();
    return string(p->symbol.c_str());
}
// Pending orders: the fake places none.
inline int OrdersTotal() { return 0; }
inline ulong OrderGetTicket(int index) { (void)index; return 0; }
inline bool OrderSelect(ulong ticket) { (void)ticket; return false; }
inline long OrderGetInteger(ENUM_ORDER_PROPERTY_INTEGER prop) { (void)prop; return 0; }
inline double OrderGetDouble(ENUM_ORDER_PROPERTY_DOUBLE prop) { (void)prop; return 0; }
inline string OrderGetString(ENUM_ORDER_PROPERTY_STRING prop) { (void)prop; return string(); }
// History.
inline bool HistorySelect(datetime from, datetime to) { (void)from; (void)to; return true; }
inline const fake::Deal *mql_deal(ulong ticket)
{
    for (auto &d : fake::terminal().deals)
        if (d.ticket == ticket)
            return &d;
    return nullptr;
}
inline const fake::Order *mql_history_order(ulong ticket)
{
    for (auto &o : fake::terminal().history_orders)
        if (o.ticket == ticket)
            return &o;
    return nullptr;
}
inline bool HistoryDealSelect(ulong ticket) { return mql_deal(ticket) != nullptr; }
inline long HistoryDealGetInteger(ulong ticket, ENUM_DEAL_PROPERTY_INTEGER prop)
{
    const fake::Deal *d = mql_deal(ticket);
    if (!d)
        return 0;
    switch (prop) {
    case DEAL_TICKET: return (long)d->ticket;
    case DEAL_ORDER: return (long)d->order;
    case DEAL_TIME: return d->time_msc / 1000;
    case DEAL_TIME_MSC: return d->time_msc;
    case DEAL_TYPE: return d->type;
    case DEAL_ENTRY: return d->entry;
    case DEAL_MAGIC: return (long)d->magic;
    case DEAL_POSITION_ID: return (long)d->position;
    }
    return 0;
}
inline double HistoryDealGetDouble(ulong ticket, ENUM_DEAL_PROPERTY_DOUBLE prop)
{
    const fake::Deal *d = mql_deal(ticket);
    if (!d)
        return 0;
    switch (prop) {
    case DEAL_VOLUME: return d->volume;
    case DEAL_PRICE: return d->price;
    case DEAL_COMMISSION: return d->commission;
    case DEAL_SWAP: return d->swap;
    case DEAL_PROFIT: return d->profit;
    case DEAL_SL: return d->sl;
    case DEAL_TP: return d->tp;
    }
    return 0;
}
inline string HistoryDealGetString(ulong ticket, ENUM_DEAL_PROPERTY_STRING prop)
{
    const fake::Deal *d = mql_deal(ticket);
    if (!d || prop != DEAL_SYMBOL)
        return string();
    return string(d->symbol.c_str());
}
inline bool HistoryOrderSelect(ulong ticket) { return mql_history_order(ticket) != nullptr; }
inline long HistoryOrderGetInteger(ulong ticket, ENUM_ORDER_PROPERTY_INTEGER prop)
{
    const fake::Order *o = mql_history_order(ticket);
    if (!o)
        return 0;
    switch (prop) {
    case ORDER_TICKET: return (long)o->ticket;
    case ORDER_TIME_SETUP_MSC: return 0;
    case ORDER_TYPE: return o->type;
    case ORDER_STATE: return o->state;
    case ORDER_MAGIC: return (long)o->magic;
    case ORDER_POSITION_ID: return (long)o->position;
    }
    return 0;
}
inline double HistoryOrderGetDouble(ulong ticket, ENUM_ORDER_PROPERTY_DOUBLE prop)
{
    const fake::Order *o = mql_history_order(ticket);
    if (!o)
        return 0;
    switch (prop) {
    case ORDER_VOLUME_INITIAL:
    case ORDER_VOLUME_CURRENT: return o->volume;
    case ORDER_PRICE_OPEN: return o->price;
    case ORDER_SL: return o->sl;
    case ORDER_TP: return o->tp;
    }
    return 0;
}

// --- CTrade: what <Trade\Trade.mqh> offers the EA, filling at the current price -----------
class CTrade {
public:
    void SetExpertMagicNumber(ulong magic) { m_magic = magic; }
    void SetDeviationInPoints(ulong points) { m_deviation = points; }
    bool SetTypeFillingBySymbol(const string &symbol) { return mql_symbol(symbol) != nullptr; }
    void SetAsyncMode(bool async) { (void)async; }
    bool Buy(double volume, const string &symbol, double price = 0.0, double sl = 0.0,
             double tp = 0.0, const string &comment = string())
    {
        (void)price;
        (void)comment;
        return open(symbol, POSITION_TYPE_BUY, volume, sl, tp);
    }
    bool Sell(double volume, const string &symbol, double price = 0.0, double sl = 0.0,
              double tp = 0.0, const string &comment = string())
    {
        (void)price;
        (void)comment;
        return open(symbol, POSITION_TYPE_SELL, volume, sl, tp);
    }
    bool PositionClose(ulong ticket, ulong deviation = ULONG_MAX)
    {
        (void)deviation;
        for (auto &p : fake::terminal().positions)
            if (p.ticket == ticket)
                return close(p, p.volume);
        return fail(TRADE_RETCODE_POSITION_CLOSED);
    }
    bool PositionClosePartial(ulong ticket, double volume, ulong deviation = ULONG_MAX)
    {
        (void)deviation;
        for (auto &p : fake::terminal().positions)
            if (p.ticket == ticket)
                return volume < p.volume - 1e-9 ? close(p, volume) : close(p, p.volume);
        return fail(TRADE_RETCODE_POSITION_CLOSED);
    }
    bool PositionModify(ulong ticket, double sl, double tp)
    {
        for (auto &p : fake::terminal().positions)
            if (p.ticket == ticket) {
                p.sl = sl;
                p.tp = tp;
                MqlTradeTransaction t;
                t.type = TRADE_TRANSACTION_POSITION;
                t.position = p.ticket;
                t.symbol = string(p.symbol.c_str());
                t.price_sl = sl;
                t.price_tp = tp;
                t.volume = p.volume;
                fake::terminal().transactions.push_back(t);
                m_result = MqlTradeResult();
                m_result.retcode = TRADE_RETCODE_DONE;
                return true;
            }
        return fail(TRADE_RETCODE_POSITION_CLOSED);
    }
    uint ResultRetcode() const { return m_result.retcode; }
    ulong ResultOrder() const { return m_result.order; }
    ulong ResultDeal() const { return m_result.deal; }
    double ResultPrice() const { return m_result.price; }
    double ResultVolume() const { return m_result.volume; }
    string ResultRetcodeDescription() const { return IntegerToString(m_result.retcode); }

private:
    ulong m_magic = 0, m_deviation = 10;
    MqlTradeResult m_result;

    bool fail(uint retcode)
    {
        m_result = MqlTradeResult();
        m_result.retcode = retcode;
        return false;
    }
    bool allowed(const fake::Symbol &s) const
    {
        const fake::Terminal &t = fake::terminal();
        return t.terminal_trade_allowed && t.ea_trade_allowed && t.account_trade_allowed &&
               s.mode == SYMBOL_TRADE_MODE_FULL;
    }
    // The transactions MetaTrader reports for a market order filled by one deal.
    void report(const fake::Order &order, const fake::Deal &deal)
    {
        fake::Terminal &t = fake::terminal();
        MqlTradeTransaction add;
        add.type = TRADE_TRANSACTION_ORDER_ADD;
        add.order = order.ticket;
        add.symbol = string(order.symbol.c_str());
        add.order_type = order.type;
        add.order_state = ORDER_STATE_STARTED;
        add.volume = order.volume;
        t.transactions.push_back(add);
        MqlTradeTransaction d;
        d.type = TRADE_TRANSACTION_DEAL_ADD;
        d.deal = deal.ticket;
        d.order = order.ticket;
        d.symbol = add.symbol;
        d.deal_type = deal.type;
        d.price = deal.price;
        d.volume = deal.volume;
        d.position = deal.position;
        t.transactions.push_back(d);
        MqlTradeTransaction del = add;
        del.type = TRADE_TRANSACTION_ORDER_DELETE;
        del.order_state = ORDER_STATE_FILLED;
        t.transactions.push_back(del);
        MqlTradeTransaction hist = del;
        hist.type = TRADE_TRANSACTION_HISTORY_ADD;
        t.transactions.push_back(hist);
    }
    bool open(const string &symbol, ENUM_POSITION_TYPE type, double volume, double sl, double tp)
    {
        fake::Terminal &t = fake::terminal();
        fake::Symbol *s = mql_symbol(symbol);
        if (!s)
            return fail(TRADE_RETCODE_INVALID);
        if (!allowed(*s))
            return fail(TRADE_RETCODE_TRADE_DISABLED);
        double steps = volume / s->vol_step;
        if (volume < s->vol_min - 1e-9 || volume > s->vol_max + 1e-9 ||
            std::fabs(steps - std::round(steps)) > 1e-6)
            return fail(TRADE_RETCODE_INVALID_VOLUME);
        double price = type == POSITION_TYPE_BUY ? s->ask : s->bid;
        fake::Order order{t.next_ticket++, 0, symbol.utf8(),
                          type == POSITION_TYPE_BUY ? ORDER_TYPE_BUY : ORDER_TYPE_SELL,
                          ORDER_STATE_FILLED, volume, price, sl, tp, m_magic};
        fake::Position p{order.ticket, symbol.utf8(), type, volume, price, sl, tp, m_magic,
                         t.server_ms()};
        order.position = p.ticket;
        fake::Deal deal{t.next_ticket++, order.ticket, p.ticket, symbol.utf8(),
                        type == POSITION_TYPE_BUY ? DEAL_TYPE_BUY : DEAL_TYPE_SELL,
                        DEAL_ENTRY_IN, volume, price, 0, -0.7 * volume * 10, 0, sl, tp, m_magic,
                        t.server_ms()};
        t.positions.push_back(p);
        t.deals.push_back(deal);
        t.history_orders.push_back(order);
        t.balance += deal.commission;
        report(order, deal);
        m_result = MqlTradeResult();
        m_result.retcode = TRADE_RETCODE_DONE;
        m_result.order = order.ticket;
        m_result.deal = deal.ticket;
        m_result.price = price;
        m_result.volume = volume;
        return true;
    }
    bool close(fake::Position &p, double volume)
    {
        fake::Terminal &t = fake::terminal();
        fake::Symbol &s = t.symbols.at(p.symbol);
        if (!allowed(s))
            return fail(TRADE_RETCODE_TRADE_DISABLED);
        bool buy = p.type == POSITION_TYPE_BUY;
        double price = buy ? s.bid : s.ask;
        double profit = (buy ? price - p.price : p.price - price) * volume * s.contract;
        fake::Order order{t.next_ticket++, p.ticket, p.symbol,
                          buy ? ORDER_TYPE_SELL : ORDER_TYPE_BUY, ORDER_STATE_FILLED, volume,
                          price, 0, 0, m_magic};
        fake::Deal deal{t.next_ticket++, order.ticket, p.ticket, p.symbol,
                        buy ? DEAL_TYPE_SELL : DEAL_TYPE_BUY, DEAL_ENTRY_OUT, volume, price,
                        profit, 0, 0, p.sl, p.tp, p.magic, t.server_ms()};
        t.deals.push_back(deal);
        t.history_orders.push_back(order);
        t.balance += profit;
        ulong ticket = p.ticket;
        p.volume -= volume;
        if (p.volume <= 1e-9)
            for (size_t i = 0; i < t.positions.size(); i++)
                if (t.positions[i].ticket == ticket) {
                    t.positions.erase(t.positions.begin() + (long)i);
                    break;
                }
        report(order, deal);
        m_result = MqlTradeResult();
        m_result.retcode = TRADE_RETCODE_DONE;
        m_result.order = order.ticket;
        m_result.deal = deal.ticket;
        m_result.price = price;
        m_result.volume = volume;
        return true;
    }
};

#endif
