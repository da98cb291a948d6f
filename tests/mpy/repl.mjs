// The real MicroPython REPL (the WebAssembly port) on stdin and stdout, byte for byte, as
// a board's USB serial line: tests/support/board.py puts it behind a pseudo-terminal for
// mpremote. Ctrl-D on an empty raw REPL line (a soft reset) starts the REPL again.
// Files named on the command line are copied into its filesystem first (the board's
// flash as a test wants it): node tests/mpy/repl.mjs [HOST_FILE:BOARD_PATH ...]
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";
import fs from "node:fs";

let out = [];
const mp = await loadMicroPython({ stdout: (b) => out.push(...b), linebuffer: false });
for (const spec of process.argv.slice(2)) {
  const [host, board] = spec.split(":");
  mp.FS.writeFile(board, fs.readFileSync(host));
}
const flush = () => {
  if (out.length) {
    process.stdout.write(Buffer.from(out));
    out = [];
  }
};
mp.replInit();
flush();
process.stdin.on("data", (data) => {
  for (const c of data) {
    if (mp.replProcessChar(c)) {
      out.push(...Buffer.from("MPY: soft reboot\r\n"));
      mp.replInit();
    }
  }
  flush();
});
process.stdin.on("end", () => process.exit(0));
