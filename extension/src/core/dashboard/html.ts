// The dashboard webview's HTML: strict CSP (default-src 'none'; the one script by nonce;
// styles from the webview's own origin plus the nonce; images only from that origin or data:).
// Shared by editor/dashboard.ts (cspSource/asWebviewUri from VS Code) and the Chromium tests
// (a fake origin served by the test). The csp-nonce meta lets the UI toolkit (FAST) add its
// one probe <style> element under the nonce.

export interface HtmlOptions {
  /** webview.cspSource */
  cspSource: string;
  nonce: string;
  /** asWebviewUri(dist/webview/dashboard.js) */
  scriptUri: string;
  /** asWebviewUri(dist/webview/dashboard.css) */
  styleUri: string;
  title: string;
}

/** Escapes text for element content and double-quoted attributes (every attribute here is). */
const esc = (s: string): string =>
  s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

export function dashboardHtml(o: HtmlOptions): string {
  const csp = [
    "default-src 'none'",
    `script-src 'nonce-${o.nonce}'`,
    `style-src ${o.cspSource} 'nonce-${o.nonce}'`,
    `img-src ${o.cspSource} data:`,
    `font-src ${o.cspSource}`,
  ].join('; ');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${esc(csp)}">
<meta property="csp-nonce" content="${esc(o.nonce)}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" nonce="${esc(o.nonce)}" href="${esc(o.styleUri)}">
<title>${esc(o.title)}</title>
</head>
<body>
<div id="root"></div>
<script nonce="${esc(o.nonce)}" src="${esc(o.scriptUri)}"></script>
</body>
</html>`;
}

/** A fresh nonce: 32 base64url characters from a CSPRNG. */
export function makeNonce(): string {
  const b = new Uint8Array(24);
  globalThis.crypto.getRandomValues(b);
  let s = '';
  for (const x of b) s += String.fromCharCode(x);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_');
}
