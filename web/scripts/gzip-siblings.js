// A tiny Vite plugin: after the bundle is written, gzip (level 9) every compressible file of
// the output folder into `<name>.gz`, kept only when smaller. pulsed loads these as the
// precompressed variants (Content-Encoding: gzip) and ignores a .gz older than its file.
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync, constants } from 'node:zlib';

const COMPRESSIBLE = /\.(html|js|mjs|css|svg|json|map|txt|xml|webmanifest)$/i;

export function gzipFolder(dir) {
  const written = [];
  for (const name of readdirSync(dir)) {
    const file = path.join(dir, name);
    const st = statSync(file);
    if (st.isDirectory()) {
      written.push(...gzipFolder(file));
    } else if (COMPRESSIBLE.test(name)) {
      const data = readFileSync(file);
      const gz = gzipSync(data, { level: constants.Z_BEST_COMPRESSION });
      if (gz.length < data.length) {
        writeFileSync(`${file}.gz`, gz);
        written.push({ file, size: data.length, gz: gz.length });
      }
    }
  }
  return written;
}

export function gzipSiblings() {
  let outDir = 'dist';
  return {
    name: 'pulse-gzip-siblings',
    apply: 'build',
    configResolved(config) {
      outDir = path.resolve(config.root, config.build.outDir);
    },
    closeBundle() {
      const files = gzipFolder(outDir);
      const raw = files.reduce((n, f) => n + f.size, 0);
      const gz = files.reduce((n, f) => n + f.gz, 0);
      console.log(`gzip: ${files.length} files, ${(raw / 1024).toFixed(1)} KiB -> ${(gz / 1024).toFixed(1)} KiB`);
    },
  };
}
