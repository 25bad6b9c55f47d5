"""Textual cashier UI. Reaches the core only through workers that call the till service
(``agent.service.Agent``; import-linter keeps it off the store, engine, ledger, tokens and
the other core modules).

Layout: ``app.py`` (``KassaApp``: routing, workers, language, wedge-scan detection),
``services.py`` (``Services``: the till ``kassa.wiring`` built from the configuration -
the service, the sync client, the print worker, the scanners - and the app's own state:
cashier, shift, language, training; the service is built on first use),
``ops.py``/``ops_shift.py`` (core operations run in workers, each one call of the
service; the sign-in ones load no scoring engine so the first screen comes up at once;
the App warms the rest up in a worker once the sign-in list shows),
``messages.py`` (dataclass messages), ``i18n.py`` (ru/en), ``entry.py`` (the checkout
entry-line grammar), ``widgets/`` (status bar, key bar, member card), ``screens/`` (one
module per flow), ``kassa.tcss`` (all styles).

Keys (visible in the key bar; descriptions are i18n keys):

====  =========================  ====  =========================
F1    help (this screen's keys)
F2    register a member           F8    new cheque (checkout)
F3    refund                      F9    training mode
F4    member lookup               F10   language ru/en
F5    sync screen                 F11   shift and X/Z reports
F6    spend all / none (checkout) F12   close shift (shift screen); a copy of the
                                        slip just committed (checkout)
F7    coupon (checkout)           Esc   back; Ctrl+Q quit
====  =========================  ====  =========================

How to add a screen (e.g. registration on F2):

1. ``tui/screens/register.py``: ``class RegisterScreen(KassaScreen)`` with
   ``compose_body()`` (the status bar, message line and key bar come from the base),
   ``BINDINGS`` whose descriptions are i18n keys, and ``relabel()`` for a language switch.
   Esc already pops back to checkout (``KassaScreen.action_back``). ``HELP_LINES``: the i18n
   keys of 2-5 lines F1 shows above the screen's keys (``tui.screens.help``).
2. Its core calls are plain functions ``op(services, *args) -> Message`` (in your module
   or your own ``ops_*.py``), each calling a method of ``services.agent`` (a new use case
   goes into the till service first); call them with ``self.request(op, *args)`` and
   handle the answer message (``on_member_registered``) and ``CoreFailed`` (the base shows it).
   Never touch ``Services``/SQLite from the screen itself.
3. Strings: ``register_strings({"register.title": ("Регистрация", "Registration"), ...})``
   at import of your module, or add them to ``i18n.STRINGS``.
4. Routing, one line in ``tui.app.FLOWS``:
   ``Flow("f2", "register", "bind.register", "tui.screens.register:RegisterScreen"),``
5. Tests: ``tests/tui_helpers.py`` builds a real store + demo programme + the real back
   office over ASGITransport and runs the app with Pilot (``async with harness.run() as
   pilot``); assert on the store and on the recorded messages (``harness.messages``).

Scans arrive on the active screen as ``Scanned`` (keyboard wedge anywhere, or serial);
handle ``on_scanned`` if your flow takes a scan (a refund slip, a member card).
"""
