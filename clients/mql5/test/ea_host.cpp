// Runs the EA, Experts/SuhoBridge.mq5 compiled by g++, in the stand-in terminal of terminal.h:
// OnInit, then OnTick for each tick of the chart's symbol, OnTradeTransaction for each trade
// transaction, OnTimer at the EA's timer, until SIGTERM or SIGINT (or --seconds), then
// OnDeinit. What an MT5 user does in the terminal, for the tests (test_mql5_ea.py and the
// walkthrough of clients/mql5/README.md).
//
//   ea_host [--set INPUT=VALUE]... [--symbol NAME=BID/DIGITS]... [--chart NAME] [--seconds N]
//           [--no-algo-trading]
//
// Inputs are the EA's (API_GATEWAY_URL, ACCOUNT_ID, API_KEY, SYMBOLS, QUOTES_PER_SECOND...).
// Without --symbol the market has EURUSD, GBPUSD and XAUUSD. The EA's files (its state) go
// to $MQL5_FILES.
#include "mql5.h"
#include "terminal.h"

#include <SuhoBridge.mq5>

#include <csignal>
#include <functional>
#include <iostream>

static volatile std::sig_atomic_t stop_requested = 0;

static void on_signal(int) { stop_requested = 1; }

static bool set_input(const std::string &name, const std::string &value)
{
    const std::map<std::string, std::function<void(const std::string &)>> inputs = {
        {"API_GATEWAY_URL", [](const std::string &v) { API_GATEWAY_URL = _S(v.c_str()); }},
        {"ACCOUNT_ID", [](const std::string &v) { ACCOUNT_ID = _S(v.c_str()); }},
        {"API_KEY", [](const std::string &v) { API_KEY = _S(v.c_str()); }},
        {"SYMBOLS", [](const std::string &v) { SYMBOLS = _S(v.c_str()); }},
        {"QUOTES_PER_SECOND", [](const std::string &v) { QUOTES_PER_SECOND = std::stoi(v); }},
        {"SNAPSHOT_SECONDS", [](const std::string &v) { SNAPSHOT_SECONDS = std::stoi(v); }},
        {"HEARTBEAT_SECONDS", [](const std::string &v) { HEARTBEAT_SECONDS = std::stoi(v); }},
        {"EXECUTE_SIGNALS", [](const std::string &v) { EXECUTE_SIGNALS = v == "true" || v == "1"; }},
        {"MAGIC_NUMBER", [](const std::string &v) { MAGIC_NUMBER = std::stoul(v); }},
        {"DEVIATION_POINTS", [](const std::string &v) { DEVIATION_POINTS = std::stoi(v); }},
        {"MAX_VOLUME", [](const std::string &v) { MAX_VOLUME = std::stod(v); }},
        {"TIMER_MS", [](const std::string &v) { TIMER_MS = std::stoi(v); }},
    };
    auto it = inputs.find(name);
    if (it == inputs.end())
        return false;
    it->second(value);
    return true;
}

int main(int argc, char **argv)
{
    fake::Terminal &t = fake::terminal();
    double seconds = 0;
    bool symbols_given = false;
    for (int i = 1; i < argc; i++) {
        std::string arg = argv[i];
        std::string next = i + 1 < argc ? argv[i + 1] : "";
        if (arg == "--set" && !next.empty()) {
            size_t eq = next.find('=');
            if (eq == std::string::npos || !set_input(next.substr(0, eq), next.substr(eq + 1))) {
                std::cerr << "ea_host: unknown input " << next << "\n";
                return 2;
            }
            i++;
        } else if (arg == "--symbol" && !next.empty()) {
            size_t eq = next.find('='), slash = next.find('/');
            t.add_symbol(next.substr(0, eq), std::stod(next.substr(eq + 1, slash - eq - 1)),
                         std::stoi(next.substr(slash + 1)));
            symbols_given = true;
            i++;
        } else if (arg == "--chart" && !next.empty()) {
            t.chart_symbol = next;
            i++;
        } else if (arg == "--seconds" && !next.empty()) {
            seconds = std::stod(next);
            i++;
        } else if (arg == "--no-algo-trading") {
            t.terminal_trade_allowed = false;
        } else {
            std::cerr << "ea_host: unknown argument " << arg << "\n";
            return 2;
        }
    }
    if (!symbols_given) {
        t.add_symbol("EURUSD", 1.09531, 5);
        t.add_symbol("GBPUSD", 1.26120, 5);
        t.add_symbol("XAUUSD", 2650.10, 2);
    }
    std::signal(SIGTERM, on_signal);
    std::signal(SIGINT, on_signal);
    int rc = OnInit();
    Print("host: OnInit returned ", rc);
    if (rc != INIT_SUCCEEDED)
        return 3;
    ulong start = GetTickCount64(), next_timer = start, next_tick = start;
    while (!stop_requested && (seconds <= 0 || GetTickCount64() - start < seconds * 1000)) {
        ulong now = GetTickCount64();
        if (now >= next_tick) {
            next_tick = now + 20;
            if (t.step())
                OnTick();
        }
        while (!t.transactions.empty()) {
            MqlTradeTransaction trans = t.transactions.front();
            t.transactions.erase(t.transactions.begin());
            MqlTradeRequest request;
            MqlTradeResult result;
            if (trans.type == TRADE_TRANSACTION_DEAL_ADD)
                Print("host: deal ", trans.deal, " of order ", trans.order, " position ",
                      trans.position, " ", trans.symbol, " ", trans.volume, " lots");
            OnTradeTransaction(trans, request, result);
        }
        if (t.timer_ms > 0 && now >= next_timer) {
            next_timer = now + t.timer_ms;
            OnTimer();
        }
        Sleep(2);
    }
    OnDeinit(REASON_REMOVE);
    Print("host: stopped; positions open ", (int)t.positions.size(), "; comment: ",
          t.comment.c_str());
    return 0;
}
