// Drives the web playground in Debian's Chromium like a person would: type the key and a prompt,
// drop a start image, generate, watch it complete, play the video to its end; then an additive
// job (keyframes, with a quality preset and prompt enhancement) through its form; a screenshot.
// Usage: node playground.mjs BASE_URL API_KEY START_IMAGE SCREENSHOT.png — prints a JSON summary.
import { chromium } from "playwright-core";

const [base, key, startImage, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.LTX_TEST_CHROMIUM || "/usr/bin/chromium",
  // No sandbox (tests may run as root); no background networking (the machine's network is closed).
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  await page.goto(base + "/");
  await page.fill("#key", key);
  await page.dispatchEvent("#key", "change");
  await page.waitForSelector("#balance:has-text('Balance $')");
  await page.fill("#prompt", "a playground clip of a red sunrise");
  await page.fill("#frames", "49");
  await page.setInputFiles("#start-drop input[type=file]", startImage);
  await page.waitForSelector("#start-drop img");
  await page.click("#submit");
  await page.waitForFunction(() => /^(completed|failed)/.test(document.getElementById("status").textContent),
    null, { timeout: 90000 });
  const played = await page.evaluate(async () => {
    const video = document.getElementById("video");
    if (video.readyState < 1) {
      await new Promise((ok, fail) => {
        video.addEventListener("loadedmetadata", ok, { once: true });
        video.addEventListener("error", () => fail(new Error("video error " + (video.error && video.error.code))), { once: true });
      });
    }
    const ended = new Promise((ok) => video.addEventListener("ended", ok, { once: true }));
    await video.play();
    await ended;
    return { ended: video.ended, duration: video.duration, currentTime: video.currentTime,
             width: video.videoWidth, height: video.videoHeight };
  });
  await page.waitForFunction(() => document.querySelectorAll("#history tr").length > 0);
  const status = await page.textContent("#status");
  const balance = await page.textContent("#balance");
  const history = await page.locator("#history tr").count();

  // Keyframes: the same image uploaded for both rows, at frames 0 and 24 of 25.
  await page.selectOption("#mode", "keyframes");
  const rows = page.locator(".kf-row");
  for (const i of [0, 1]) {
    await rows.nth(i).locator("input[type=file]").setInputFiles(startImage);
    await page.waitForFunction((i) => document.querySelectorAll(".kf-image")[i].value.includes("/files/assets/"), i);
  }
  await rows.nth(1).locator(".kf-frame").fill("24");
  await page.fill("#frames", "25");
  await page.selectOption("#quality", "fast");
  await page.check("#enhance-prompt");
  const firstJob = status.split(" · ").pop();
  await page.click("#submit");
  await page.waitForFunction((first) => {
    const text = document.getElementById("status").textContent;
    return !text.includes(first) && /^(completed|failed)/.test(text);
  }, firstJob, { timeout: 90000 });
  const additive = {
    status: await page.textContent("#status"),
    enhanced: await page.textContent("#enhanced"),
    error: await page.textContent("#error"),
  };
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({
    played,
    additive,
    status,
    balance,
    history,
    errors,
  }));
} finally {
  await browser.close();
}
