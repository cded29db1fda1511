"""Raspberry Pi Pico entry point: wires the pure firmware core (hw.board) to the link and pins.

Not run in tests (it needs `machine`); all logic it calls is in hw/board.py,
hw/board_safety.py, hw/monitor.py and hw/codec.py. Pin map and wiring:
hw/PINMAP.md. On the board this file is /main.py, next to the package /hw
(hw/manifest.py).

Each loop pass: read the link, tick, sample the inputs, then one SPI transfer
that shifts the new lamp bits into the 74HC595 chain while the 74HC165 sense
chain (loaded just before) shifts the lamp currents out; the monitor judges
them. At power-up, before any lamp is driven, the sense chain is read once for
the self-test. The fault record lives in RECORD_FILE on the Pico's flash.
"""

import sys
import time

import machine
import micropython
from machine import Pin

from hw import board, codec

LINK = "uart"  # "uart": UART0 on GP0/GP1; "usb": the USB-CDC serial port
BAUD = 115200
WDT_MS = 500  # RP2040 hardware watchdog: a stuck loop resets the chip
RECORD_FILE = "/fault.rec"

INPUT_PINS = (2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 22, 26)  # inputs 0..15
LATCH_PIN = 17  # 74HC595 RCLK
SCK_PIN = 18  # 74HC595 SRCLK (SPI0 SCK)
MOSI_PIN = 19  # 74HC595 SER of the first chip (SPI0 TX)
OE_PIN = 20  # 74HC595 /OE, pulled up on the board: lamps off until driven
RELAY_PIN = 21  # flash-transfer relay driver: energised (1) = normal, released = flash
SENSE_LOAD_PIN = 27  # 74HC165 SH/LD of the sense chain: low = load the lamp currents
MISO_PIN = 16  # 74HC165 QH of the last sense register (SPI0 RX)
LED_PIN = 25
SENSE_CHIPS = 13  # 12 sense registers + the strapped pattern register


class FileStore:
    """The fault record in a small file (board.RecordStore's interface)."""

    def load(self):
        try:
            with open(RECORD_FILE, "rb") as f:
                return f.read()
        except OSError:
            return None

    def save(self, data):
        try:
            with open(RECORD_FILE, "wb") as f:
                f.write(data)
        except OSError:
            pass  # a full or failed flash must not stop the loop


def _read_sense(spi, load, out, raw, sense):
    # Load the 165s, then one transfer: out (a dummy byte, then the lamp bytes)
    # into the 595s while raw comes from the 165s: raw[0] is the pattern
    # register, raw[1 + 11 - k] sense register k (PINMAP.md).
    load(0)
    load(1)
    spi.write_readinto(out, raw)
    for k in range(board.LAMP_BYTES):
        sense[k] = raw[SENSE_CHIPS - 1 - k]
    return raw[0]


def _open_link():
    # Returns (read(buf) -> n, write(bytes)).
    if LINK == "usb":
        import select

        micropython.kbd_intr(-1)  # a 0x03 byte in a frame must not raise KeyboardInterrupt
        poll = select.poll()
        poll.register(sys.stdin, select.POLLIN)
        stdin = sys.stdin.buffer
        stdout = sys.stdout.buffer

        def read_usb(buf):
            n = 0
            while n < len(buf) and poll.poll(0):
                buf[n] = stdin.read(1)[0]
                n += 1
            return n

        return read_usb, stdout.write
    uart = machine.UART(0, baudrate=BAUD, tx=Pin(0), rx=Pin(1), timeout=0, rxbuf=1024)

    def read_uart(buf):
        if not uart.any():
            return 0
        return uart.readinto(buf) or 0

    return read_uart, uart.write


def run():
    read, write = _open_link()
    oe = Pin(OE_PIN, Pin.OUT, value=1)
    latch = Pin(LATCH_PIN, Pin.OUT, value=0)
    relay = Pin(RELAY_PIN, Pin.OUT, value=0)
    led = Pin(LED_PIN, Pin.OUT, value=0)
    load = Pin(SENSE_LOAD_PIN, Pin.OUT, value=1)
    spi = machine.SPI(
        0, baudrate=1_000_000, sck=Pin(SCK_PIN), mosi=Pin(MOSI_PIN), miso=Pin(MISO_PIN)
    )
    inputs = [Pin(n, Pin.IN, Pin.PULL_UP) for n in INPUT_PINS]  # opto pulls low = active
    rx = bytearray(64)
    rx_view = memoryview(rx)
    out = bytearray(SENSE_CHIPS)  # out[0]: shifted past the last 595; out[1:] the lamps
    lamps = memoryview(out)[1:]
    raw = bytearray(SENSE_CHIPS)
    sense = bytearray(board.LAMP_BYTES)
    core = board.Board(time.ticks_ms(), store=FileStore())
    # Power-up self-test: /OE is still high (lamps off) and the relay released.
    time.sleep_ms(50)  # the opto filters settle
    pattern = _read_sense(spi, load, out, raw, sense)
    core.run_self_test(time.ticks_ms(), sense, pattern)
    wdt = machine.WDT(timeout=WDT_MS)
    while True:
        now = time.ticks_ms()
        try:
            n = read(rx)
            if n:
                reply = core.receive(now, rx_view[:n])
                if reply:
                    write(reply)
            core.tick(now)
            raw = 0
            for i in range(len(inputs)):
                if not inputs[i].value():
                    raw |= 1 << i
            core.sample_inputs(now, raw)
            safety = core.safety
            flash_on = board.flash_phase(now)
            board.lamp_bits(safety.driven, safety.channels, flash_on, lamps)
            # The currents sensed are those of the lamps latched last pass.
            _read_sense(spi, load, out, raw, sense)
            latch(1)
            latch(0)
            oe(0)
            core.sense(now, sense, flash_on)
            relay(0 if safety.flash_transfer else 1)
            led(flash_on if safety.flash_transfer else 1)
        except Exception as e:
            # Flash at once; the watchdog is not fed, so if the error repeats the
            # chip resets and the outputs fall to their fail-safe levels.
            core.safety.force_flash(now, codec.FAULT_INTERNAL)
            if LINK != "usb":
                sys.print_exception(e)
            continue
        wdt.feed()
        time.sleep_ms(1)


if __name__ == "__main__":
    run()
