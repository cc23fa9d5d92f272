/* The alarm sound: a two-tone beep made with WebAudio (no audio file). Browsers only let a page
   make sound after the user touched it, so the board's sound button unlocks it once. */
"use strict";

window.HWBeep = (function () {
  let ctx = null;
  let enabled = true;
  let played = 0;

  function context() {
    if (ctx == null) {
      const Ctor = window.AudioContext || window.webkitAudioContext;
      if (!Ctor) return null;
      ctx = new Ctor();
    }
    return ctx;
  }

  function tone(ac, at, freq, length) {
    const osc = ac.createOscillator();
    const gain = ac.createGain();
    osc.type = "square";
    osc.frequency.setValueAtTime(freq, at);
    gain.gain.setValueAtTime(0.0001, at);
    gain.gain.exponentialRampToValueAtTime(0.25, at + 0.01);
    gain.gain.exponentialRampToValueAtTime(0.0001, at + length);
    osc.connect(gain).connect(ac.destination);
    osc.start(at);
    osc.stop(at + length + 0.02);
  }

  /** Three high-low pairs, about 1.5 s: a 一级 alarm. */
  function alarm() {
    played += 1;
    document.body.dataset.beeps = String(played);
    if (!enabled) return false;
    const ac = context();
    if (ac == null) return false;
    if (ac.state === "suspended") ac.resume().catch(function () { /* needs a user gesture */ });
    const start = ac.currentTime + 0.02;
    for (let i = 0; i < 3; i++) {
      tone(ac, start + i * 0.5, 1046, 0.2);
      tone(ac, start + i * 0.5 + 0.22, 784, 0.2);
    }
    return true;
  }

  /** A user gesture: unlock (or mute) the sound. Returns whether sound is on. */
  function toggle() {
    const ac = context();
    if (ac != null && ac.state === "suspended") {
      enabled = true;
      ac.resume().catch(function () { /* stays silent */ });
      return true;
    }
    enabled = !enabled;
    return enabled;
  }

  function state() {
    if (!enabled) return "off";
    return ctx == null || ctx.state !== "running" ? "locked" : "on";
  }

  return { alarm, toggle, state };
})();
