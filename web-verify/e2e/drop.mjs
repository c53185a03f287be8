// Drives the verification page in a real browser (Debian's chromium, headless): gives it files
// the way a visitor would, and prints one JSON line per file describing what the page rendered.
// A last line lists every request the browser made outside the server (there must be none).
//
// Usage: node drop.mjs URL SCREENSHOT_DIR PLAN.json
// PLAN.json: [{ "file": PATH, "via": "keyboard" | "drop",
//               "fake": PATH (optional: answer /api/verify with this JSON instead of the server,
//                       after "delay_ms", for reports this server cannot produce),
//               "latency_ms": N (optional: network latency, to make the server seem slow),
//               "shot": NAME (optional: screenshot name; default the file's) }, ...]
import { chromium } from "playwright-core";
import { readFileSync } from "node:fs";
import { basename, join } from "node:path";

const [url, shots, planPath] = process.argv.slice(2);
const plan = JSON.parse(readFileSync(planPath, "utf8"));
const origin = new URL(url).origin;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

// Watches the page from its first instant: was the analysis indicator shown (and indeterminate),
// what did the live status region say, did any injected markup run?
const watcher = () => {
  const seen = window.__seen = { analysis: false, indeterminate: false, elapsed: [], status: [] };
  new MutationObserver(() => {
    const work = document.getElementById("work"), bar = document.getElementById("progress");
    const status = document.getElementById("status"), elapsed = document.getElementById("elapsed");
    if (work && !work.hidden && work.dataset.phase === "analysis") {
      seen.analysis = true;
      if (bar && !bar.hasAttribute("value")) seen.indeterminate = true;
      const t = elapsed && elapsed.textContent;
      if (t && !seen.elapsed.includes(t)) seen.elapsed.push(t);
    }
    const s = status && status.textContent;
    if (s && seen.status[seen.status.length - 1] !== s) seen.status.push(s);
  }).observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
};

const text = async (page, selector) => {
  const loc = page.locator(selector);
  return (await loc.count()) ? (await loc.first().innerText()).replace(/\s+/g, " ").trim() : null;
};

try {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const requests = [];
  context.on("request", r => requests.push(r.url()));
  const page = await context.newPage();
  await page.addInitScript(watcher);
  const cdp = await context.newCDPSession(page);
  await cdp.send("Network.enable");
  // Listening from the start: the file chooser is intercepted before any key is pressed.
  let nextChooser = null;
  page.on("filechooser", c => { if (nextChooser) { nextChooser(c); nextChooser = null; } });
  const errors = [];
  page.on("pageerror", e => errors.push(String(e)));
  for (const step of plan) {
    const file = step.file, name = basename(file);
    await page.unrouteAll();
    if (step.fake) {
      const body = readFileSync(step.fake, "utf8");
      await page.route("**/api/verify", async route => {
        await new Promise(r => setTimeout(r, step.delay_ms || 0));
        await route.fulfill({ status: 200, contentType: "application/json", body });
      });
    }
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(url); // a fresh page per file, as a visitor would have
    // "latency_ms": a slow server, as far as the page can tell (the answer comes that much later).
    await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: step.latency_ms || 0, downloadThroughput: -1, uploadThroughput: -1 });
    let focused = null;
    if (step.via === "drop") {
      // A real drop event carrying a File built from the bytes on disk.
      const bytes = readFileSync(file).toString("base64");
      const transfer = await page.evaluateHandle(([b64, n]) => {
        const raw = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        const type = /\.mp4$/i.test(n) ? "video/mp4" : /\.wav$/i.test(n) ? "audio/wav" : /\.png$/i.test(n) ? "image/png" : /\.jpe?g$/i.test(n) ? "image/jpeg" : "";
        const t = new DataTransfer(); t.items.add(new File([raw], n, { type })); return t;
      }, [bytes, name]);
      await page.dispatchEvent("#drop", "dragover", { dataTransfer: transfer });
      await page.dispatchEvent("#drop", "drop", { dataTransfer: transfer });
    } else {
      // Keyboard only: Tab reaches the drop zone, Enter opens the file chooser.
      await page.keyboard.press("Tab");
      focused = await page.evaluate(() => document.activeElement && document.activeElement.id);
      if (focused !== "drop") throw new Error("Tab did not reach the drop zone (focused: " + focused + ")");
      const chooser = new Promise((resolve, reject) => {
        nextChooser = resolve;
        setTimeout(() => reject(new Error("Enter on the drop zone opened no file chooser")), 15000);
      });
      await page.keyboard.press("Enter");
      await (await chooser).setFiles(file);
    }
    const banner = page.locator(".banner");
    await banner.waitFor({ timeout: 60000 });
    await page.waitForSelector("#preview:not([data-state=loading])", { timeout: 10000 }).catch(() => {});
    const dom = await page.evaluate(() => {
      const count = (medium, cls) => document.querySelectorAll(`.timeline[data-medium=${medium}] span.${cls}`).length;
      const timeline = medium => document.querySelector(`.timeline[data-medium=${medium}]`) ? {
        on: count(medium, "on"), weak: count(medium, "weak"), off: count(medium, "off"), none: count(medium, "none"),
        label: document.querySelector(`.timeline[data-medium=${medium}]`).getAttribute("aria-label"),
      } : null;
      const fig = document.getElementById("preview");
      const media = fig && fig.querySelector("video, img, audio");
      const raw = document.getElementById("raw-json");
      // The lowest text contrast on the page (WCAG ratio; 4.5 is the AA floor for body text).
      const rgb = c => (c.match(/[\d.]+/g) || []).map(Number);
      const lum = ([r, g, b]) => [r, g, b].map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
        .reduce((a, v, i) => a + v * [0.2126, 0.7152, 0.0722][i], 0);
      const background = n => { for (; n; n = n.parentElement) { const c = rgb(getComputedStyle(n).backgroundColor); if (c.length === 3 || c[3] > 0) return c; } return [255, 255, 255]; };
      let contrast = { ratio: 21, where: null };
      for (const n of document.querySelectorAll("body *")) {
        if (![...n.childNodes].some(t => t.nodeType === 3 && t.textContent.trim()) || !n.getClientRects().length) continue;
        const a = lum(rgb(getComputedStyle(n).color)), b = lum(background(n));
        const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
        if (ratio < contrast.ratio) contrast = { ratio: Math.round(ratio * 100) / 100, where: n.tagName + "." + n.className + ": " + n.textContent.slice(0, 40) };
      }
      return {
        verdict: document.querySelector(".banner").getAttribute("data-verdict"),
        headline: document.querySelector(".banner h2").textContent,
        focused_after: document.activeElement && document.activeElement.tagName,
        recovered_status: document.getElementById("recovered") && document.getElementById("recovered").dataset.status,
        timeline: { picture: timeline("picture"), sound: timeline("sound") },
        preview: fig && {
          state: fig.dataset.state,
          tag: media && media.tagName.toLowerCase(),
          video_width: media && media.tagName === "VIDEO" ? media.videoWidth : null,
          current_time: media && media.tagName === "VIDEO" ? media.currentTime : null,
          src: media && media.getAttribute("src"),
          caption: fig.querySelector("figcaption").textContent,
        },
        raw_json: raw && raw.getAttribute("href"),
        overflow_x: document.documentElement.scrollWidth > window.innerWidth,
        contrast,
        status: document.getElementById("status").textContent,
        work_hidden: document.getElementById("work").hidden,
        seen: window.__seen,
        injected: window.__xss || null,
        foreign_elements: document.querySelectorAll("#result script, #result iframe, #result img:not(#preview img), #result [onerror]").length,
      };
    });
    const out = {
      file: name, via: step.via, fake: !!step.fake, focused, ...dom,
      text: await text(page, ".banner"),
      cards: { c2pa: await text(page, "#c2pa"), recovered: await text(page, "#recovered"), watermark: await text(page, "#watermark"), file: await text(page, "#file") },
    };
    const shot = step.shot || name;
    await page.screenshot({ path: join(shots, shot + "-phone.png"), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.screenshot({ path: join(shots, shot + "-desktop.png"), fullPage: true });
    console.log(JSON.stringify(out));
  }
  const external = requests.filter(u => !u.startsWith(origin + "/") && !u.startsWith("blob:" + origin + "/") && !u.startsWith("data:"));
  console.log(JSON.stringify({ external, requests: requests.length, page_errors: errors }));
} finally {
  await browser.close();
}
