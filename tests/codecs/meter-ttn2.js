// A pulse meter's codec in the TTN v2 form (written for the gateway's tests).
// bytes 0-3: pulse count u32 little-endian.
function Decoder(bytes, port) {
  var count = bytes[0] | (bytes[1] << 8) | (bytes[2] << 16) | (bytes[3] << 24) >>> 0;
  return { pulses: count >>> 0, port: port };
}
