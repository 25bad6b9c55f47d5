"""One error hierarchy for the core, each error readable by a cashier.

Every error carries a stable machine ``code`` (for logs, the POS API and tests), a short
``title`` and a message in Russian (``message_ru``, shown at the till by default) and in
English (``message_en``, written to logs). ``str(error)`` is the English message so log
lines stay English.

::

    AgentError
    ├── InputError                      bad input from the cashier, the POS or a file
    │   ├── PhoneError                  phone number not recognised
    │   ├── MemberCodeError             digits-only member code with a wrong check digit
    │   ├── TokenError                  signed app QR / coupon token
    │   │   ├── TokenMalformed          not a token of ours, truncated, bad encoding
    │   │   ├── TokenForged             signature does not verify (or unknown key)
    │   │   └── TokenExpired            signature fine, lifetime over
    │   ├── CartError                   empty cart, negative or absurd amounts, bad lines
    │   │   └── ChequeLimitError        a line or the cheque above its sanity ceiling
    │   ├── CatalogError                unknown SKU or category
    │   ├── RulesError                  programme rules file invalid
    │   ├── CouponError                 coupon not applicable / already used
    │   ├── RedemptionError             asked to spend more than allowed
    │   ├── RefundError                 refund of more than was bought, unknown receipt
    │   │   └── AmbiguousReceiptError   a short cheque number that names several cheques
    │   └── ConsentError                registration without the programme consent
    ├── NotFoundError                   member / receipt not in this till's store
    ├── ConflictError                   same receipt id with another payload
    └── StoreError                      the local SQLite store
        ├── StoreLockedError            another process owns the store
        └── StoreWriteError             disk full, read-only, I/O error: nothing written
            └── StoreFullError          the store's disk is full: it cannot even be opened
"""

from __future__ import annotations

from typing import Any


class AgentError(Exception):
    """Base of every error the core raises on purpose.

    ``details`` holds machine-readable context (field names, limits) for the POS API.
    """

    code: str = "agent_error"
    title_ru: str = "Ошибка"
    title_en: str = "Error"

    def __init__(self, message_en: str, message_ru: str, **details: Any) -> None:
        super().__init__(message_en)
        self.message_en = message_en
        self.message_ru = message_ru
        self.details: dict[str, Any] = details

    @property
    def title(self) -> str:
        """Short heading for a cashier dialog (Russian, the till default)."""
        return self.title_ru

    def message(self, lang: str = "ru") -> str:
        """The cashier-facing text in ``lang`` ("ru" or "en")."""
        return self.message_en if lang == "en" else self.message_ru

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form used by the CLI and the POS API."""
        return {
            "error": self.code,
            "title": self.title_ru,
            "message_ru": self.message_ru,
            "message_en": self.message_en,
            "details": self.details,
        }


class InputError(AgentError):
    code = "bad_input"
    title_ru = "Неверный ввод"
    title_en = "Bad input"


class PhoneError(InputError):
    code = "bad_phone"
    title_ru = "Телефон не распознан"
    title_en = "Phone not recognised"


class MemberCodeError(InputError):
    code = "bad_member_code"
    title_ru = "Неверный код участника"
    title_en = "Bad member code"


class TokenError(InputError):
    code = "bad_token"
    title_ru = "QR-код не принят"
    title_en = "QR code refused"


class TokenMalformed(TokenError):
    code = "token_malformed"


class TokenForged(TokenError):
    code = "token_forged"


class TokenExpired(TokenError):
    code = "token_expired"


class CartError(InputError):
    code = "bad_cart"
    title_ru = "Ошибка в чеке"
    title_en = "Bad cheque"


class ChequeLimitError(CartError):
    """A line or the whole cheque above its sanity ceiling (``agent.limits``): a typo such
    as an extra zero, never a real sale; ``details`` names the amount and the ceiling."""

    code = "cheque_limit"
    title_ru = "Сумма больше допустимой"
    title_en = "Amount over the limit"


class CatalogError(InputError):
    code = "unknown_item"
    title_ru = "Неизвестный товар"
    title_en = "Unknown item"


class RulesError(InputError):
    code = "bad_rules"
    title_ru = "Ошибка в правилах программы"
    title_en = "Bad programme rules"


class CouponError(InputError):
    code = "bad_coupon"
    title_ru = "Купон не принят"
    title_en = "Coupon refused"


class RedemptionError(InputError):
    code = "redemption_refused"
    title_ru = "Списание бонусов невозможно"
    title_en = "Redemption refused"


class RefundError(InputError):
    code = "bad_refund"
    title_ru = "Возврат невозможен"
    title_en = "Refund refused"


class AmbiguousReceiptError(RefundError):
    """Several cheques of this till end with the typed characters; ``details['candidates']``
    lists them (newest first)."""

    code = "ambiguous_receipt"
    title_ru = "Уточните номер чека"
    title_en = "Which cheque?"


class ConsentError(InputError):
    code = "consent_required"
    title_ru = "Нужно согласие"
    title_en = "Consent required"


class NotFoundError(AgentError):
    code = "not_found"
    title_ru = "Не найдено"
    title_en = "Not found"


class ConflictError(AgentError):
    code = "conflict"
    title_ru = "Конфликт данных"
    title_en = "Conflict"


class StoreError(AgentError):
    code = "store_error"
    title_ru = "Ошибка базы кассы"
    title_en = "Till store error"


class StoreLockedError(StoreError):
    code = "store_locked"
    title_ru = "База кассы занята"
    title_en = "Till store in use"


class StoreWriteError(StoreError):
    code = "store_write_failed"
    title_ru = "Запись не удалась"
    title_en = "Write failed"


class StoreFullError(StoreWriteError):
    """The till store's disk has no room left (``agent.store.FULL_BELOW_BYTES``), so
    SQLite cannot open it (its shared-memory index and log need space) or write to it.
    Nothing is wrong with the store: it opens once space is freed, and ``kassa agent
    serve`` waits for that (``kassa.runtime.Runtime.open_when_space``)."""

    code = "disk_full"
    title_ru = "Диск заполнен"
    title_en = "Disk full"
