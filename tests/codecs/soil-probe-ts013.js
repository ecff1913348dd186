// A soil probe's codec in the LoRaWAN TS013 form (written for the gateway's tests).
// fPort 2: temperature i16 (0.01 degC), moisture u8 (0.5 %), battery u16 (mV).
// fPort 3: the probe's status text (ASCII).
function decodeUplink(input) {
  var b = input.bytes;
  if (input.fPort === 2) {
    if (b.length < 5) {
      return { errors: ["frame too short: " + b.length + " bytes"] };
    }
    var raw = (b[0] << 8) | b[1];
    if (raw & 0x8000) raw -= 0x10000;
    var battery = (b[3] << 8) | b[4];
    var result = {
      data: { temperature: raw / 100, moisture: b[2] / 2, battery_mv: battery },
      warnings: [],
    };
    if (battery < 2500) result.warnings.push("battery low");
    return result;
  }
  if (input.fPort === 3) {
    return { data: { status: String.fromCharCode.apply(null, b) } };
  }
  return { errors: ["unknown fPort " + input.fPort] };
}
