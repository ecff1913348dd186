// Payload codec of the town's in-ground parking bay sensor (LoRaWAN, TS013 decodeUplink form),
// written for this project in the style vendors publish (no vendor's code). Big-endian.
//
// fPort 1, bay report (5 bytes), every 5 minutes:
//   byte 0     header: bits 4-7 protocol version (1), bits 0-3 report type
//              (0 = the bay changed since the last report, 1 = unchanged, a heartbeat)
//   byte 1     flags: bit 0 a vehicle is over the sensor, bit 1 magnetometer fault
//              (the occupancy is then unknown and left out)
//   bytes 2-3  vehicles that arrived since installation (wraps at 65536)
//   byte 4     temperature of the sensor, degC, two's complement (0x80: no reading)
// fPort 2, device status (3 bytes), twice a day:
//   bytes 0-1  battery, mV
//   byte 2     firmware version: bits 4-7 major, bits 0-3 minor
// Anything else (another port, length, protocol version or report type) is refused with
// `errors`: the gateway dead-letters it as codec_error instead of storing a guess.
// Example bay report on fPort 1: 10 01 04 d2 1b = a change to occupied, 1234 arrivals, 27 degC.

var PROTOCOL_VERSION = 1;
var REPORT_TYPES = ["change", "heartbeat"];
var NO_TEMPERATURE = 0x80;
var BATTERY_LOW_MV = 3000;

function u16(bytes, offset) {
  return (bytes[offset] << 8) | bytes[offset + 1];
}

function i8(value) {
  return value > 0x7f ? value - 0x100 : value;
}

function hex(value) {
  return "0x" + (value < 16 ? "0" : "") + value.toString(16);
}

function bayReport(bytes) {
  if (bytes.length !== 5) {
    return { errors: ["bay report needs 5 bytes, got " + bytes.length] };
  }
  var version = bytes[0] >> 4;
  var type = bytes[0] & 0x0f;
  if (version !== PROTOCOL_VERSION) {
    return { errors: ["unsupported protocol version " + version + " (header " + hex(bytes[0]) + ")"] };
  }
  if (type >= REPORT_TYPES.length) {
    return { errors: ["unknown report type " + type + " (header " + hex(bytes[0]) + ")"] };
  }
  var fault = (bytes[1] & 0x02) !== 0;
  var data = { report: REPORT_TYPES[type], sensor_fault: fault, arrivals: u16(bytes, 2) };
  var warnings = [];
  if (fault) {
    warnings.push("magnetometer fault: occupancy unknown");
  } else {
    data.state = bytes[1] & 0x01 ? "occupied" : "free";
  }
  if (bytes[4] !== NO_TEMPERATURE) {
    data.temperature = i8(bytes[4]);
  }
  return { data: data, warnings: warnings };
}

function deviceStatus(bytes) {
  if (bytes.length !== 3) {
    return { errors: ["device status needs 3 bytes, got " + bytes.length] };
  }
  var battery = u16(bytes, 0);
  var warnings = battery < BATTERY_LOW_MV ? ["battery low: " + battery + " mV"] : [];
  return {
    data: { battery_mv: battery, firmware: (bytes[2] >> 4) + "." + (bytes[2] & 0x0f) },
    warnings: warnings,
  };
}

function decodeUplink(input) {
  if (input.fPort === 1) {
    return bayReport(input.bytes);
  }
  if (input.fPort === 2) {
    return deviceStatus(input.bytes);
  }
  return { errors: ["unknown fPort " + input.fPort] };
}
