// The console is served by the gateway under /console/: the chat page (index.html) on the
// client listeners, the admin page (admin.html) on the admin listener. Hashed file names
// under assets/ are cached forever; nothing is inlined (the Content-Security-Policy forbids it).
import { resolve } from 'node:path';
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/console/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    rollupOptions: {
      input: {
        index: resolve(import.meta.dirname, 'index.html'),
        admin: resolve(import.meta.dirname, 'admin.html'),
      },
    },
  },
});
