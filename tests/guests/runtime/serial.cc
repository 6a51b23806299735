#include "serial.h"

#include "io.h"

namespace rt {

void SerialInit() {
  Outb(kCom1 + kUartIer, 0x00);
  Outb(kCom1 + kUartLcr, 0x80);  // DLAB on: divisor latch
  Outb(kCom1 + 0, 0x01);         // divisor 1: 115200 baud
  Outb(kCom1 + 1, 0x00);
  Outb(kCom1 + kUartLcr, 0x03);  // 8N1, DLAB off
  // FCR is left alone: clearing (or toggling) the FIFOs would drop input that arrived early.
  Outb(kCom1 + kUartMcr, 0x03);  // DTR | RTS
}

void SerialPutc(char c) {
  // Bounded: a VMM that never reports THR empty must not hang the guest.
  for (int i = 0; i < 100000 && !(Inb(kCom1 + kUartLsr) & kLsrThrEmpty); ++i) Pause();
  Outb(kCom1 + kUartThr, static_cast<uint8_t>(c));
}

void SerialWrite(const char* s) {
  for (; *s; ++s) {
    if (*s == '\n') SerialPutc('\r');
    SerialPutc(*s);
  }
}

namespace {

// Formats into a line buffer so a whole line leaves in one burst (fewer interleavings on SMP).
struct Out {
  char buf[256];
  int len = 0;
  void Put(char c) {
    if (len == static_cast<int>(sizeof(buf)) - 1) Flush();
    buf[len++] = c;
  }
  void Flush() {
    buf[len] = 0;
    SerialWrite(buf);
    len = 0;
  }
};

void PutNumber(Out& out, uint64_t v, unsigned base, bool upper, bool negative, int width,
               char pad) {
  char digits[24];
  int n = 0;
  const char* set = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  do {
    digits[n++] = set[v % base];
    v /= base;
  } while (v);
  int total = n + (negative ? 1 : 0);
  if (negative && pad == '0') out.Put('-');
  for (; total < width; ++total) out.Put(pad);
  if (negative && pad != '0') out.Put('-');
  while (n) out.Put(digits[--n]);
}

}  // namespace

void VPrintf(const char* fmt, va_list ap) {
  Out out;
  for (; *fmt; ++fmt) {
    if (*fmt != '%') {
      out.Put(*fmt);
      continue;
    }
    ++fmt;
    char pad = ' ';
    int width = 0;
    int longs = 0;
    bool alt = false;
    if (*fmt == '#') {
      alt = true;
      ++fmt;
    }
    if (*fmt == '0') {
      pad = '0';
      ++fmt;
    }
    while (*fmt >= '0' && *fmt <= '9') width = width * 10 + (*fmt++ - '0');
    while (*fmt == 'l' || *fmt == 'z') {
      ++longs;
      ++fmt;
    }
    switch (*fmt) {
      case 'd':
      case 'i': {
        int64_t v = longs ? va_arg(ap, long) : va_arg(ap, int);
        uint64_t mag = v < 0 ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
        PutNumber(out, mag, 10, false, v < 0, width, pad);
        break;
      }
      case 'u':
      case 'x':
      case 'X': {
        uint64_t v = longs ? va_arg(ap, unsigned long) : va_arg(ap, unsigned);
        if (alt && *fmt != 'u') {
          out.Put('0');
          out.Put('x');
        }
        PutNumber(out, v, *fmt == 'u' ? 10 : 16, *fmt == 'X', false, width, pad);
        break;
      }
      case 'p':
        out.Put('0');
        out.Put('x');
        PutNumber(out, reinterpret_cast<uint64_t>(va_arg(ap, void*)), 16, false, false, width, pad);
        break;
      case 's': {
        const char* s = va_arg(ap, const char*);
        if (!s) s = "(null)";
        int n = 0;
        while (s[n]) ++n;
        for (; n < width; ++n) out.Put(' ');
        while (*s) out.Put(*s++);
        break;
      }
      case 'c':
        out.Put(static_cast<char>(va_arg(ap, int)));
        break;
      case '%':
        out.Put('%');
        break;
      case 0:
        --fmt;  // trailing '%': stop at the terminator
        break;
      default:
        out.Put('%');
        out.Put(*fmt);
    }
  }
  out.Flush();
}

void Printf(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  VPrintf(fmt, ap);
  va_end(ap);
}

}  // namespace rt
