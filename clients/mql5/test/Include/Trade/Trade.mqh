// The test build's stand-in for the terminal's <Trade\Trade.mqh>: CTrade is in terminal.h.
