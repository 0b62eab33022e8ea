// Drives the MQL5 session (Include/Suho/Session.mqh, compiled by g++ through mql5.h) against a
// live gateway, for tests/timescale/gateway/test_mql5_session.py.
//
//   session_driver URL ACCOUNT_ID API_KEY STATE_FILE
//
// It polls the session every 2 ms, like an EA's OnTimer, executes each SIGNAL once (a fake
// fill: an EXECUTION_REPORT with TRADE_RETCODE_DONE), answers COMMAND and CONFIG with an ACK,
// and sends a HEARTBEAT when the session asks for a keepalive. Commands on stdin, one a line:
//
//   quotes N RATE    send N BROKER_QUOTEs, RATE a second (also while disconnected: they wait
//                    in the outbox)
//   status           print "status <state> <next sequence> <outbox> <last acked> <sessions>"
//   stop             Stop() (the state file is written) and exit 0
//
// Events on stdout, one a line: "welcome LAST_ACCEPTED OUTBOX", "closed CODE DETAIL",
// "quote SEQUENCE", "quotes-done", "signal SEQUENCE SIGNAL_ID", "executed SIGNAL_ID SEQUENCE",
// "duplicate SIGNAL_ID", "heartbeat SEQUENCE", "command SEQUENCE CODE", "config SEQUENCE KEY", "error CODE REF DETAIL".
#include "mql5.h"
#include "terminal.h"

#include <Suho/Session.mqh>

#include <iostream>
#include <sstream>

class CDriver : public CSuhoSession {
public:
    bool verbose = false;

protected:
    void OnWelcome(const ulong last_accepted)
    {
        Print("welcome ", last_accepted, " ", OutboxSize());
    }
    bool OnSignal(const SSuhoRecord &signal)
    {
        mql_array<uchar> id = mql_array<uchar>(16);
        SuhoGetUuid(signal, SUHO_F_SIGNAL_SIGNAL_ID, id);
        string text = SuhoUuidToString(id);
        Print("signal ", signal.u[SUHO_F_SEQUENCE], " ", text);
        if (WasExecuted(id)) {
            Print("duplicate ", text);
            return true;
        }
        MarkExecuted(id);
        SSuhoRecord report;
        SuhoRecordInit(report, SUHO_MESSAGE_TYPE_EXECUTION_REPORT);
        report.u[SUHO_F_TIMESTAMP_US] = (ulong)SuhoNowUs();
        SuhoSetUuid(report, SUHO_F_EXECUTION_REPORT_SIGNAL_ID, id);
        report.u[SUHO_F_EXECUTION_REPORT_TICKET] = 5000 + signal.u[SUHO_F_SEQUENCE];
        long entry = (long)signal.u[SUHO_F_SIGNAL_ENTRY_PRICE];
        report.u[SUHO_F_EXECUTION_REPORT_ACTUAL_ENTRY_PRICE] = (ulong)(entry ? entry : 109531000);
        report.u[SUHO_F_EXECUTION_REPORT_SLIPPAGE] = 0;
        report.u[SUHO_F_EXECUTION_REPORT_RESULT_CODE] = 10009; // TRADE_RETCODE_DONE
        if (!Send(report))
            return false;
        Print("executed ", text, " ", report.u[SUHO_F_SEQUENCE]);
        return true;
    }
    bool OnCommand(const SSuhoRecord &command)
    {
        Print("command ", command.u[SUHO_F_SEQUENCE], " ", command.u[SUHO_F_COMMAND_COMMAND]);
        return true;
    }
    bool OnConfig(const SSuhoRecord &config)
    {
        Print("config ", config.u[SUHO_F_SEQUENCE], " ", config.text[SUHO_F_CONFIG_KEY]);
        return true;
    }
    void OnError(const SSuhoRecord &error)
    {
        Print("error ", error.u[SUHO_F_ERROR_CODE], " ", error.u[SUHO_F_ERROR_REF_SEQUENCE], " ",
              error.text[SUHO_F_ERROR_DETAIL]);
    }
    void OnClosed(const int code, const string detail) { Print("closed ", code, " ", detail); }
    void OnKeepalive(void)
    {
        SSuhoRecord hb;
        SuhoRecordInit(hb, SUHO_MESSAGE_TYPE_HEARTBEAT);
        hb.u[SUHO_F_TIMESTAMP_US] = (ulong)SuhoNowUs();
        hb.text[SUHO_F_HEARTBEAT_EA_VERSION] = _S("mql5-test");
        hb.u[SUHO_F_HEARTBEAT_TERMINAL_BUILD] = 4410;
        hb.u[SUHO_F_HEARTBEAT_PING_MS] = 12;
        hb.u[SUHO_F_HEARTBEAT_TERMINAL_CONNECTED] = 1;
        hb.u[SUHO_F_HEARTBEAT_TRADE_ALLOWED] = 1;
        if (Send(hb))
            Print("heartbeat ", hb.u[SUHO_F_SEQUENCE]);
    }
    void Log(const string text)
    {
        if (verbose)
            Print("log ", text);
    }
};

static CDriver driver;

static bool read_command(std::string &line)
{
    static std::string buffer;
    for (;;) {
        size_t nl = buffer.find('\n');
        if (nl != std::string::npos) {
            line = buffer.substr(0, nl);
            buffer.erase(0, nl + 1);
            return true;
        }
        pollfd p = {0, POLLIN, 0};
        if (::poll(&p, 1, 0) != 1)
            return false;
        char chunk[512];
        ssize_t n = ::read(0, chunk, sizeof chunk);
        if (n <= 0) {
            line = "stop";
            return true;
        }
        buffer.append(chunk, (size_t)n);
    }
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        std::cerr << "usage: session_driver URL ACCOUNT_ID API_KEY STATE_FILE\n";
        return 2;
    }
    driver.verbose = std::getenv("SUHO_DRIVER_VERBOSE") != nullptr;
    SuhoInit();
    SuhoClockInit();
    if (!driver.Configure(_S(argv[1]), _S(argv[2]), _S(argv[3]), _S(argv[4]))) {
        std::cerr << "cannot configure the session\n";
        return 2;
    }
    driver.Start();
    long quotes_left = 0, rate = 1;
    ulong next_quote_us = 0;
    long bid = 109531000;
    for (;;) {
        driver.Poll();
        std::string line;
        while (read_command(line)) {
            std::istringstream in(line);
            std::string what;
            in >> what;
            if (what == "quotes") {
                in >> quotes_left >> rate;
                next_quote_us = GetMicrosecondCount();
            } else if (what == "status") {
                Print("status ", driver.State(), " ", driver.NextSequence(), " ",
                      driver.OutboxSize(), " ", driver.LastAcked(), " ", driver.Sessions());
            } else if (what == "stop") {
                driver.Stop();
                Print("stopped ", driver.OutboxSize());
                return 0;
            }
        }
        while (quotes_left > 0 && GetMicrosecondCount() >= next_quote_us) {
            SSuhoRecord quote;
            SuhoRecordInit(quote, SUHO_MESSAGE_TYPE_BROKER_QUOTE);
            quote.u[SUHO_F_TIMESTAMP_US] = (ulong)SuhoNowUs();
            quote.text[SUHO_F_BROKER_QUOTE_SYMBOL] = _S("EURUSD");
            bid += (MathRand() % 21) - 10;
            quote.u[SUHO_F_BROKER_QUOTE_BID] = (ulong)bid;
            quote.u[SUHO_F_BROKER_QUOTE_ASK] = (ulong)(bid + 2000);
            quote.u[SUHO_F_BROKER_QUOTE_VOLUME] = 100000000;
            quote.u[SUHO_F_BROKER_QUOTE_SPREAD_POINTS] = 20;
            if (!driver.Send(quote)) {
                std::cerr << "a quote was not sent\n";
                return 1;
            }
            Print("quote ", quote.u[SUHO_F_SEQUENCE]);
            if (--quotes_left == 0)
                Print("quotes-done");
            next_quote_us += (ulong)(1000000 / rate);
        }
        Sleep(2);
    }
}
