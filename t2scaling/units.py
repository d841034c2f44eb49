"""Human-readable numbers: parameter and token counts, FLOPs. The one place such formatting lives (plan, plots).

    >>> format_params(1.23e9), format_tokens(3.4e12), format_flops(1e23)
    ('1.2B params', '3.4T tokens', '1.0e23 FLOPs')
"""

import math

# Short-scale suffixes as ML papers use them: 1.2B params, 3.4T tokens. Beyond 1e15 scientific reads better.
_SUFFIXES = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K"), (1.0, ""))


def _round_sig(x, digits):
    """x rounded to `digits` significant digits, as text, never in exponent notation."""
    x = float(f"{x:.{digits - 1}e}")  # round first so 9.99 -> 10 gets the decimals of 10, not of 9.99
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(x))))
    return f"{x:.{decimals}f}"


def format_sci(x, digits=2):
    """Scientific notation without '+' or padded exponents: 1e23 -> '1.0e23', 3.2e-5 -> '3.2e-5'."""
    if not math.isfinite(x):
        return "n/a" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    mantissa, exponent = f"{x:.{digits - 1}e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def format_count(x, digits=2):
    """A count with a K/M/B/T suffix at `digits` significant digits: 1.23e9 -> '1.2B', 5.2e6 -> '5.2M'."""
    if not math.isfinite(x):
        return format_sci(x, digits)
    if x == 0:
        return "0"
    if abs(x) >= 1e15 or abs(x) < 1:
        return format_sci(x, digits)
    for scale, suffix in _SUFFIXES:
        if abs(x) >= scale:
            value = x / scale
            # Integer part is never rounded away: 123K, not 120K; below that, `digits` significant digits.
            text = f"{value:.0f}" if abs(value) >= 10 ** (digits - 1) else _round_sig(value, digits)
            # 999.7M rounds to "1000M"; step up a unit so it reads "1.0B".
            if abs(float(text)) >= 1000 and scale < 1e12:
                return format_count(math.copysign(1000 * scale, x), digits)
            return text + suffix
    raise AssertionError("unreachable: the last suffix has scale 1")


def format_params(n, digits=2):
    """Parameter count: 1.23e9 -> '1.2B params'."""
    return f"{format_count(n, digits)} params"


def format_tokens(d, digits=2):
    """Token count: 3.4e12 -> '3.4T tokens'."""
    return f"{format_count(d, digits)} tokens"


def format_flops(c, digits=2):
    """Compute in FLOPs: 1e23 -> '1.0e23 FLOPs'."""
    return f"{format_sci(c, digits)} FLOPs"


def format_number(x, digits=3):
    """A plain quantity such as tokens per parameter or k: 2833.4 -> '2,833', 58.33 -> '58.3', 1.0 -> '1.00'."""
    if not math.isfinite(x):
        return format_sci(x, digits)
    if x == 0:
        return "0"
    if abs(x) >= 10 ** digits:
        return f"{x:,.0f}" if abs(x) < 1e15 else format_sci(x, digits)
    if abs(x) < 10 ** -(digits - 1):
        return format_sci(x, digits)
    return _round_sig(x, digits)


# ------------------------------------------------------------------------------------------ report captions

def _each(formatter, unit=""):
    """A Jinja filter: `formatter` on a number, or on each of a list joined with commas; then the unit."""
    def apply(value, digits=2):
        if value is None:
            return "none"
        if isinstance(value, (list, tuple)):
            text = ", ".join(formatter(float(v), digits) for v in value)
        else:
            text = formatter(float(value), digits)
        return f"{text} {unit}".rstrip()
    return apply


def report_filters():
    """Jinja filters for the report captions (report/*.rst), so that a caption prints config values as the plots
    and tables do: ``{{ x|flops }}`` -> '1.0e23 FLOPs' (a list: '1.0e22, 1.0e23 FLOPs'), ``|sci``, ``|si``
    (a count: '1.2B'), ``|number`` ('2,833'; digits as the argument). None of them shadows a built-in filter."""
    return {"flops": _each(format_sci, "FLOPs"), "sci": _each(format_sci), "si": _each(format_count),
            "number": _each(lambda x, d: f"{x:,.0f}" if x.is_integer() and abs(x) < 1e15
                            else format_number(x, max(d, 3)))}


def register_report_filters():
    """Make `report_filters` available to every Jinja environment created afterwards in this process (Snakemake
    builds the report's with jinja2's default filters and offers no hook of its own); a no-op without jinja2."""
    try:
        from jinja2 import defaults
    except ImportError:
        return
    defaults.DEFAULT_FILTERS.update(report_filters())
