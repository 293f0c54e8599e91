// Vite builds web/ into web/dist/, which pulsed serves (PULSE_WEB_ROOT). The gzip plugin
// writes a `.gz` next to every compressible file so that pulsed can send it as is.
import { defineConfig } from 'vite';
import { gzipSiblings } from './scripts/gzip-siblings.js';
import { serviceWorker } from './scripts/service-worker.js';

export default defineConfig({
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2020',
    // Everything as files under /assets/ (content-hashed, cached for a year by pulsed).
    assetsInlineLimit: 0,
    sourcemap: false,
    reportCompressedSize: false,
    rollupOptions: {
      // Hex hashes: pulsed finds the hash after the last '-' of `name-<hash>.ext`, and a
      // base64url hash may itself contain a '-' (then the file was served `no-cache`).
      output: { hashCharacters: 'hex' },
    },
  },
  // sw.js (the app shell offline) lists the bundle and these files of public/.
  plugins: [
    serviceWorker({
      extra: [
        '/favicon.svg',
        '/manifest.webmanifest',
        '/icons/icon-192.png',
        '/icons/icon-512.png',
        '/icons/maskable-512.png',
        '/icons/apple-touch-icon.png',
      ],
    }),
    gzipSiblings(),
  ],
  server: {
    // `npm run dev` against a pulsed on :8080 (PULSE_PUBLIC_ORIGIN must then be Vite's origin).
    proxy: {
      '/api': { target: 'http://127.0.0.1:8080', ws: true },
      '/health': 'http://127.0.0.1:8080',
    },
  },
});
