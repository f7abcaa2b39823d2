// The files of a local web page (index.html, app.js, style.css in a folder of
// dist/) and uPlot from the package, served as they are: one table and one
// answer for the load generator's page and the daemon's.
import type { ServerResponse } from 'node:http';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export interface WebAsset {
  file: string;
  type: string;
}

/** Where uPlot's browser build is, in node_modules (never a CDN). */
export const UPLOT_DIR = dirname(createRequire(import.meta.url).resolve('uplot/dist/uPlot.iife.min.js'));

/** The page in `webDir` and uPlot under /vendor/, by URL path. */
export function webAssets(webDir: string): Record<string, WebAsset> {
  return {
    '/': { file: join(webDir, 'index.html'), type: 'text/html; charset=utf-8' },
    '/app.js': { file: join(webDir, 'app.js'), type: 'text/javascript; charset=utf-8' },
    '/style.css': { file: join(webDir, 'style.css'), type: 'text/css; charset=utf-8' },
    '/vendor/uPlot.iife.min.js': { file: join(UPLOT_DIR, 'uPlot.iife.min.js'), type: 'text/javascript; charset=utf-8' },
    '/vendor/uPlot.min.css': { file: join(UPLOT_DIR, 'uPlot.min.css'), type: 'text/css; charset=utf-8' },
  };
}

/** Answers a GET or HEAD of one of `assets`; false when `path` is none of them (or the method is another). */
export async function serveAsset(assets: Record<string, WebAsset>, path: string, method: string, res: ServerResponse): Promise<boolean> {
  const asset = assets[path];
  if (asset === undefined || (method !== 'GET' && method !== 'HEAD')) return false;
  const data = await readFile(asset.file);
  res.writeHead(200, { 'content-type': asset.type, 'content-length': data.length, 'cache-control': 'no-cache' });
  res.end(method === 'HEAD' ? undefined : data);
  return true;
}
