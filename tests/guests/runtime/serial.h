// COM1 (8250/16550 UART at 0x3f8): polled output and printf-style formatting.
#pragma once

#include <stdarg.h>
#include <stdint.h>

namespace rt {

inline constexpr uint16_t kCom1 = 0x3f8;

// 16550 register offsets (datasheet names).
inline constexpr uint16_t kUartRbr = 0;  // receive buffer (read, DLAB=0)
inline constexpr uint16_t kUartThr = 0;  // transmit holding (write, DLAB=0)
inline constexpr uint16_t kUartIer = 1;  // interrupt enable
inline constexpr uint16_t kUartIir = 2;  // interrupt identification (read)
inline constexpr uint16_t kUartFcr = 2;  // FIFO control (write)
inline constexpr uint16_t kUartLcr = 3;  // line control
inline constexpr uint16_t kUartMcr = 4;  // modem control
inline constexpr uint16_t kUartLsr = 5;  // line status
inline constexpr uint8_t kLsrDataReady = 0x01;
inline constexpr uint8_t kLsrThrEmpty = 0x20;

// 115200 8N1, interrupts off; pending receive data is kept.
void SerialInit();
void SerialPutc(char c);
void SerialWrite(const char* s);

// Supports %d %i %u %x %X %p %s %c %% with optional '#' (0x prefix), '0', width and 'l'/'ll'/'z'
// length.
void Printf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void VPrintf(const char* fmt, va_list ap);

}  // namespace rt
