"""Keeps the web console open in headless Chromium while a benchmark runs (benches/console_cost.rs):
the connectors page in one tab and a connector's page in another, both polling as a user's
would. Prints "open" once both pages show data, and closes the browser when stdin closes.

    hold_open.py URL CONNECTOR
"""

import sys

from console_test import Console

url, connector = sys.argv[1:3]
console = Console(url, shots=None)
console.open("#/")
console.wait("the connectors page", lambda: connector in console.rows())
console.driver.switch_to.new_window("tab")
console.open(f"#/c/{connector}")
console.wait("the connector page", lambda: console.shown_state())
print("open", flush=True)
sys.stdin.read()
console.driver.quit()
