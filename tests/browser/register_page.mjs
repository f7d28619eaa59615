// Opens an HTML register (aiguillage registre export --format html) in Debian's Chromium and
// prints what a reader would see, as JSON: the sheets and their headings, errors, requests that
// left the file, and the size of the PDF that printing it gives. Usage:
//   node register_page.mjs REGISTER.html [SCREENSHOT.png]
import { chromium } from "playwright-core";

const [, , file, screenshot] = process.argv;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox"],
});
try {
  const page = await browser.newPage();
  const problems = [];
  const requests = [];
  page.on("pageerror", (error) => problems.push(`page error: ${error}`));
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console: ${message.text()}`);
  });
  page.on("request", (request) => requests.push(request.url()));
  await page.goto(`file://${file}`, { waitUntil: "load" });
  const seen = await page.evaluate(() => ({
    lang: document.documentElement.lang,
    title: document.title,
    heading: document.querySelector("h1")?.textContent.trim(),
    sheets: [...document.querySelectorAll("section.fiche")].map((section) => ({
      id: section.id,
      title: section.querySelector("h2")?.textContent.trim(),
      headings: [...section.querySelectorAll("h3")].map((h) => h.textContent.trim()),
      flows: (() => {
        const title = [...section.querySelectorAll("h3")].find(
          (h) => h.textContent.trim() === "Flux observés",
        );
        let table = title?.nextElementSibling;
        while (table && table.tagName !== "TABLE") table = table.nextElementSibling;
        return table ? table.querySelectorAll("tbody tr").length : 0;
      })(),
      height: section.getBoundingClientRect().height,
      scripts: section.querySelectorAll("script").length,
    })),
    breakBefore: [...document.querySelectorAll("section.fiche")].map(
      (section) => getComputedStyle(section).breakBefore,
    ),
  }));
  await page.emulateMedia({ media: "print" });
  const printed = await page.evaluate(() =>
    [...document.querySelectorAll("section.fiche")].map(
      (section) => getComputedStyle(section).breakBefore,
    ),
  );
  const pdf = await page.pdf({ format: "A4" });
  if (screenshot) {
    await page.emulateMedia({ media: "screen" });
    await page.screenshot({ path: screenshot, fullPage: false });
  }
  const outside = requests.filter((url) => !url.startsWith("file://"));
  console.log(
    JSON.stringify({ ...seen, printedBreakBefore: printed, pdfBytes: pdf.length, problems, outside }),
  );
} finally {
  await browser.close();
}
