"""The node's screens in a real browser (Debian's Chromium through Playwright)."""
