// A codec with the faults a vendor codec can have (written for the gateway's fault tests).
// byte 0 chooses: 0xE1 loops for ever, 0xE2 allocates without bound, 0xE3 throws,
// 0xE4 returns errors, 0xE5 recurses without end; anything else is a normal reading:
// bytes 0-1 level u16 big-endian (mm), byte 2 sequence number.
var leak = [];
function decodeUplink(input) {
  var b = input.bytes;
  switch (b[0]) {
    case 0xe1:
      for (;;) {}
    case 0xe2:
      for (;;) leak.push(new Array(4096).fill(b.length));
    case 0xe3:
      throw new TypeError("cannot read frame type " + b[1]);
    case 0xe4:
      return { errors: ["checksum mismatch"], warnings: ["resend requested"] };
    case 0xe5:
      return (function deeper(n) { return deeper(n + 1) + 1; })(0);
  }
  return { data: { level_mm: (b[0] << 8) | b[1], seq: b[2] } };
}
