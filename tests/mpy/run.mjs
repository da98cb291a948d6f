// Run a Python script under the real MicroPython interpreter (WebAssembly port) with the
// firmware package copied into its filesystem as /firmware. Usage:
//   node tests/mpy/run.mjs SCRIPT.py [FILE_TO_COPY ...]
// Extra files are copied to / (for test vectors). Exit code 1 when the script raised.
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";
import fs from "node:fs";
import path from "node:path";

const [script, ...extra] = process.argv.slice(2);
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..", "..");
const mp = await loadMicroPython({
  stdout: (line) => process.stdout.write(line + "\n"),
  stderr: (line) => process.stderr.write(line + "\n"),
});
mp.FS.mkdir("/firmware");
for (const f of fs.readdirSync(path.join(root, "firmware"))) {
  if (f.endsWith(".py")) mp.FS.writeFile("/firmware/" + f, fs.readFileSync(path.join(root, "firmware", f)));
}
for (const f of extra) mp.FS.writeFile("/" + path.basename(f), fs.readFileSync(f));
try {
  mp.runPython("import sys\nsys.path.insert(0, '/')\n" + fs.readFileSync(script, "utf8"));
} catch (err) {
  process.stderr.write(String(err.message || err) + "\n");
  process.exit(1);
}
