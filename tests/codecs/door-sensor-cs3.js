// A door sensor's codec in the ChirpStack v3 form (written for the gateway's tests).
// byte 0: 1 open / 0 closed; bytes 1-2: open count u16 big-endian.
function Decode(fPort, bytes, variables) {
  return { open: bytes[0] === 1, open_count: (bytes[1] << 8) | bytes[2], port: fPort };
}
