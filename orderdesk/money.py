"""Money is integer fen (1/100 CNY) everywhere; only these functions turn it into text and back."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation


def format_money(fen: int) -> str:
    """``1234567`` → ``¥12,345.67``."""
    sign = "-" if fen < 0 else ""
    yuan, cents = divmod(abs(fen), 100)
    return f"{sign}¥{yuan:,}.{cents:02d}"


def parse_money(text: str) -> int:
    """``"12,345.67"`` or ``"¥12345.6"`` → fen; raises ValueError for anything else."""
    cleaned = text.strip().replace("¥", "").replace(",", "").replace("￥", "")
    try:
        value = Decimal(cleaned)
    except InvalidOperation as exc:
        raise ValueError(f"not an amount of money: {text!r}") from exc
    if value != value.quantize(Decimal("0.01")):
        raise ValueError(f"more than two decimals: {text!r}")
    return int(value * 100)
