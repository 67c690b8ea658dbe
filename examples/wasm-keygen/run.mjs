// Runs the constrained client's key generation inside Node's WebAssembly runtime and writes
// every file it made into a directory, for comparison with the native build (`diff -r`).
//
//   node run.mjs <module.wasm> <seed> <out-dir>
//
// First a run that keeps nothing (its peak heap is the client's working heap), then one that
// keeps every file, which are written out.
import { readFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const [wasmPath, seedText, outDir] = process.argv.slice(2);
if (!wasmPath || !seedText || !outDir) {
  console.error("usage: node run.mjs <module.wasm> <seed> <out-dir>");
  process.exit(2);
}
const { instance } = await WebAssembly.instantiate(readFileSync(wasmPath), {});
const e = instance.exports;
const seed = BigInt(seedText);

let started = performance.now();
const made = Number(e.ensi_keygen(seed, 0));
const seconds = (performance.now() - started) / 1000;
const workingPeak = Number(e.ensi_peak_heap());
if (made === 0) {
  console.error("ensi_keygen failed");
  process.exit(1);
}

started = performance.now();
if (Number(e.ensi_keygen(seed, 1)) !== made) {
  console.error("ensi_keygen (keeping the files) failed or differs");
  process.exit(1);
}
const keepSeconds = (performance.now() - started) / 1000;
mkdirSync(outDir, { recursive: true });
const count = Number(e.ensi_file_count());
const part = (i, p) => Number(e.ensi_file_part(i, p));
for (let i = 0; i < count; i++) {
  const memory = new Uint8Array(e.memory.buffer);
  const name = new TextDecoder().decode(memory.subarray(part(i, 0), part(i, 0) + part(i, 1)));
  if (name.includes("/") || name.startsWith(".")) throw new Error(`bad name ${name}`);
  writeFileSync(join(outDir, name), memory.subarray(part(i, 2), part(i, 2) + part(i, 3)));
}
console.log(JSON.stringify({
  runtime: `node ${process.version} WebAssembly`,
  files: count,
  bytes: made,
  seconds,
  seconds_keeping_files: keepSeconds,
  peak_heap_bytes: workingPeak,
}));
