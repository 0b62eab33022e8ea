// A stand-in for the MetaTrader 5 terminal (filled in with the EA's needs).
#ifndef SUHO_MQL5_TERMINAL_H
#define SUHO_MQL5_TERMINAL_H
#include "mql5.h"
#endif
