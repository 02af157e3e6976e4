/**
 * How this repository starts Chromium with WebGPU on a machine without a GPU: Debian's
 * chromium (Playwright cannot download browsers here) with SwiftShader as the Vulkan
 * driver. Shared by the vitest browser project and the studio's end-to-end test.
 */

/** The Chromium executable (`CHROMIUM_PATH` overrides Debian's). */
export const CHROMIUM_PATH: string = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Flags that expose `navigator.gpu` in headless Chromium on SwiftShader. */
export const CHROMIUM_WEBGPU_ARGS: readonly string[] = [
  '--no-sandbox',
  '--headless=new',
  '--enable-unsafe-webgpu',
  '--enable-unsafe-swiftshader',
  '--use-webgpu-adapter=swiftshader',
  '--use-angle=swiftshader',
  '--enable-features=Vulkan',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

/**
 * The SwiftShader Vulkan driver Debian's chromium ships: point Dawn at it
 * (`VK_ICD_FILENAMES`, before Dawn starts) to run Node on the browser's driver.
 */
export const CHROMIUM_SWIFTSHADER_ICD: string = process.env.CHROMIUM_SWIFTSHADER_ICD ?? '/usr/lib/chromium/vk_swiftshader_icd.json';
