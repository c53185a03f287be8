// Drops files on the verification page in a real browser (Debian's chromium, headless) and
// prints one JSON line per file: the verdict the page rendered and its banner text.
// Usage: node drop.mjs URL SCREENSHOT_DIR FILE...
import { chromium } from "playwright-core";
import { basename, join } from "node:path";

const [url, shots, ...files] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  // A phone-sized viewport: the page must be readable there.
  const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
  const external = [];
  page.on("request", r => { if (!r.url().startsWith(url) && !r.url().startsWith("blob:") && !r.url().startsWith("data:")) external.push(r.url()); });
  for (const file of files) {
    await page.goto(url); // a fresh page per file, as a visitor would have
    // Keyboard users reach the drop zone with Tab; the file then goes in through its input
    // (Playwright's way to answer a file chooser without a desktop dialog).
    await page.keyboard.press("Tab");
    const focused = await page.evaluate(() => document.activeElement && document.activeElement.id);
    if (focused !== "drop") throw new Error("Tab did not reach the drop zone (focused: " + focused + ")");
    await page.setInputFiles("#picker", file);
    const banner = page.locator(".banner");
    await banner.waitFor({ timeout: 60000 });
    const verdict = await banner.getAttribute("data-verdict");
    const text = (await banner.innerText()).replace(/\s+/g, " ");
    const card = (await page.locator(".card").first().innerText()).replace(/\s+/g, " ");
    await page.screenshot({ path: join(shots, basename(file) + ".png"), fullPage: true });
    const timeline = await page.locator(".timeline span.on").count();
    console.log(JSON.stringify({ file: basename(file), verdict, text, card, timeline }));
  }
  console.log(JSON.stringify({ external }));
} finally {
  await browser.close();
}
