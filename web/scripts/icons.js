// Draws the app icons (the favicon's teal square with a white pulse line) as PNGs with no
// dependency: `node scripts/icons.js` writes public/icons/. The PNGs are committed; run this
// again only when the design changes. "any" icons have rounded corners; the maskable one is
// full-bleed with the line inside the 80 % safe zone; apple-touch-icon is opaque (iOS).
import { writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { deflateSync } from 'node:zlib';

const TEAL = [0x0f, 0x76, 0x6e];
// the favicon's path in a 32x32 box: M4 17h6l3-8 5 15 3-7h7
const LINE = [
  [4, 17],
  [10, 17],
  [13, 9],
  [18, 24],
  [21, 17],
  [28, 17],
];

function crc32(buf) {
  let c = ~0;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}

function segDist(px, py, [ax, ay], [bx, by]) {
  const dx = bx - ax;
  const dy = by - ay;
  const t = Math.max(0, Math.min(1, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)));
  return Math.hypot(px - (ax + t * dx), py - (ay + t * dy));
}

// size: pixels; scale: of the line around the centre; radius: of the corners (of 32 units)
function icon(size, { scale = 1, radius = 7 } = {}) {
  const SS = 4; // supersampling per axis
  const rows = [];
  for (let y = 0; y < size; y++) {
    const row = Buffer.alloc(1 + size * 4);
    for (let x = 0; x < size; x++) {
      let bg = 0;
      let fg = 0;
      for (let sy = 0; sy < SS; sy++)
        for (let sx = 0; sx < SS; sx++) {
          const u = ((x + (sx + 0.5) / SS) / size) * 32;
          const v = ((y + (sy + 0.5) / SS) / size) * 32;
          // rounded square
          const cx = Math.max(radius - u, 0, u - (32 - radius));
          const cy = Math.max(radius - v, 0, v - (32 - radius));
          if (radius === 0 || Math.hypot(cx, cy) <= radius) bg++;
          // the line, scaled around the centre
          const lu = 16 + (u - 16) / scale;
          const lv = 16 + (v - 16) / scale;
          let d = Infinity;
          for (let i = 0; i + 1 < LINE.length; i++) d = Math.min(d, segDist(lu, lv, LINE[i], LINE[i + 1]));
          if (d <= 1.3) fg++;
        }
      const n = SS * SS;
      const a = bg / n;
      const f = fg / n;
      const o = 1 + x * 4;
      for (let c = 0; c < 3; c++) row[o + c] = Math.round(TEAL[c] * (1 - f) + 255 * f);
      row[o + 3] = Math.round(255 * a);
    }
    rows.push(row);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 6; // RGBA
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(Buffer.concat(rows), { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

const out = path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'public', 'icons');
mkdirSync(out, { recursive: true });
const files = {
  'icon-192.png': icon(192),
  'icon-512.png': icon(512),
  'maskable-512.png': icon(512, { scale: 0.8, radius: 0 }),
  'apple-touch-icon.png': icon(180, { radius: 0 }),
};
for (const [name, data] of Object.entries(files)) {
  writeFileSync(path.join(out, name), data);
  console.log(`${name}: ${data.length} bytes`);
}
