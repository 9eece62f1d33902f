"""Make the real-data corpus: small CSV files with the columns and labels people actually upload.

    python tests/data/corpus/generate.py                 # rewrite the small files next to this script
    python tests/data/corpus/generate.py --scale 20 --out /tmp/corpus-big   # 20x the rows

The files are deterministic (one seed per file), so the committed copies are what this writes.
Every file is written with plain `csv` (never pandas' writer), so labels, dates and numbers are
spelled exactly as a person or a spreadsheet would spell them ("yes", "TRUE", "1,234.50").
README.md lists each file and the traits it carries.
"""

import argparse
import csv
import datetime as dt
import random
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORDS = (
    "invoice late refund email called app crash price plan upgrade downgrade support slow fast "
    "billing card expired discount family travel moved router outage contract promo loyal ticket"
).split()


def _notes(rng: random.Random) -> str:
    """Free text: a few words and a number, so nearly every value is distinct."""
    return f"{' '.join(rng.sample(WORDS, rng.randint(2, 4)))} #{rng.randint(100, 9999)}"


def _thousands(value: float, decimals: int = 2) -> str:
    return f"{value:,.{decimals}f}"


def churn(n: int, rng: random.Random):
    """The churn-like table of issue 10: id, signup date, plan, charges with separators, notes, yes/no."""
    header = ["customer id", "signup date", "plan", "monthly charges", "tenure months", "notes", "churned"]
    start = dt.date(2021, 1, 1)
    rows = []
    for i in range(n):
        plan = rng.choice(["basic", "pro", "team"])
        tenure = rng.randint(1, 72)
        charges = {"basic": 29.0, "pro": 79.0, "team": 1150.0}[plan] * rng.uniform(0.8, 1.3)
        risk = (tenure < 12) + (plan == "basic") + (rng.random() < 0.15)
        rows.append(
            [
                f"C{100000 + i}",
                (start + dt.timedelta(days=rng.randint(0, 1000))).isoformat(),
                plan,
                _thousands(charges),
                tenure,
                _notes(rng),
                "yes" if risk >= 2 else "no",
            ]
        )
    return header, rows


def sensors(n: int, rng: random.Random):
    """Datetimes with and without zones, times of day, names with dots, brackets and slashes; Y/N."""
    header = ["reading.id", "recorded at", "local time", "shift start", "temp.c", "pressure [kPa]", "flow/min", "alarm"]
    base = dt.datetime(2024, 3, 1, 6, 0, 0)
    zones = ["+02:00", "Z", "-05:00", "+00:00"]
    rows = []
    for i in range(n):
        when = base + dt.timedelta(minutes=17 * i + rng.randint(0, 9))
        temp = rng.gauss(40, 12)
        pressure = rng.gauss(101.3, 4)
        rows.append(
            [
                f"R{i:05d}",
                when.strftime("%Y-%m-%dT%H:%M:%S") + rng.choice(zones),
                when.strftime("%Y-%m-%d %H:%M:%S"),
                rng.choice(["06:00", "14:00", "22:00"]),
                f"{temp:.1f}",
                f"{pressure:.2f}",
                f"{rng.uniform(1, 9):.2f}",
                "Y" if temp > 52 or (pressure > 107 and rng.random() < 0.8) else "N",
            ]
        )
    return header, rows


def unicode_names(n: int, rng: random.Random):
    """Unicode, emoji and leading-digit column names; true/false labels written in lower case."""
    header = ["température", "prix (€)", "🔥 score", "2nd reading", "1st_visit", "città", "approved"]
    cities = ["Zürich", "Kraków", "São Paulo", "Москва", "東京", "Reykjavík"]
    rows = []
    for _ in range(n):
        temp = rng.gauss(18, 7)
        score = rng.randint(0, 100)
        rows.append(
            [
                f"{temp:.1f}",
                f"{rng.uniform(5, 500):.2f}",
                score,
                f"{rng.gauss(0, 1):.3f}",
                (dt.date(2023, 1, 1) + dt.timedelta(days=rng.randint(0, 365))).isoformat(),
                rng.choice(cities),
                "true" if score + rng.gauss(0, 15) > 55 else "false",
            ]
        )
    return header, rows


def case_twins(n: int, rng: random.Random):
    """Names that differ only in case, constant columns, an integer ID; labels 0/1."""
    header = ["ID", "Value", "value", "Code", "CODE", "source", "version", "label"]
    rows = []
    for i in range(n):
        big, small = rng.gauss(50, 10), rng.gauss(0, 1)
        code = rng.choice(["a", "b", "c"])
        rows.append(
            [
                1000 + i,
                f"{big:.2f}",
                f"{small:.3f}",
                code,
                rng.choice(["X", "Y"]),
                "web",
                1,
                1 if (big > 52) ^ (code == "c") else 0,
            ]
        )
    return header, rows


def sparse_signs(n: int, rng: random.Random):
    """A column 60 % missing, a mixed-type column, booleans as strings; labels -1/1."""
    header = ["row", "mostly empty", "mixed", "active", "balance", "direction"]
    rows = []
    for i in range(n):
        balance = rng.gauss(0, 100)
        mixed = rng.choice([str(rng.randint(0, 50)), f"{rng.uniform(0, 9):.1f}", "n/a", "unknown", "", "12abc"])
        rows.append(
            [
                i,
                "" if rng.random() < 0.6 else f"{rng.gauss(5, 2):.2f}",
                mixed,
                rng.choice(["yes", "no"]),
                f"{balance:.2f}",
                1 if balance + rng.gauss(0, 30) > 0 else -1,
            ]
        )
    return header, rows


def grades(n: int, rng: random.Random):
    """Three classes 1/2/3, names with slashes, percent signs and dots; an integer student id."""
    header = ["student id", "hours/week", "score (%)", "attended.sessions", "enrolled", "term", "grade"]
    rows = []
    for i in range(n):
        hours = rng.uniform(0, 20)
        score = min(100.0, max(0.0, 40 + 3 * hours + rng.gauss(0, 10)))
        rows.append(
            [
                20240000 + i,
                f"{hours:.1f}",
                f"{score:.1f}",
                rng.randint(0, 30),
                rng.choice(["Yes", "No"]),
                rng.choice(["spring", "autumn"]),
                1 if score < 55 else 2 if score < 75 else 3,
            ]
        )
    return header, rows


def ticket_codes(n: int, rng: random.Random):
    """Labels "1"/"2"/"10" with a few missing; UTC datetimes, dates, times, amounts "12,345"."""
    header = ["ticket", "opened", "opened day", "response time", "amount", "escalated", "priority"]
    base = dt.datetime(2024, 1, 1)
    rows = []
    for i in range(n):
        amount = rng.uniform(10, 60000)
        escalated = rng.random() < 0.3
        when = base + dt.timedelta(minutes=rng.randint(0, 500_000))
        priority = "10" if amount > 40000 or escalated and rng.random() < 0.5 else "2" if amount > 15000 else "1"
        rows.append(
            [
                f"T-{uuid.UUID(int=rng.getrandbits(128)).hex[:12]}",
                when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                when.date().isoformat(),
                f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00",
                _thousands(amount, 0),
                "TRUE" if escalated else "FALSE",
                "" if i % 25 == 7 else priority,
            ]
        )
    return header, rows


LONG_LABELS = (
    "Refund issued after the customer reported a damaged parcel",
    "Replacement shipped because the item never arrived at the address",
    "No action needed: the customer only asked about delivery times",
)


def long_labels(n: int, rng: random.Random):
    """Long label strings, a high-cardinality text column with emoji, True/False as strings."""
    header = ["case", "message", "agent", "is_vip", "order value", "outcome"]
    phrases = {
        0: ["box was crushed 📦", "broken on arrival", "cracked screen 😡", "damaged"],
        1: ["never arrived", "lost parcel", "tracking stuck 🚚", "wrong address"],
        2: ["when will it come?", "delivery time?", "how long 🙂", "shipping question"],
    }
    rows = []
    for _ in range(n):
        outcome = rng.randrange(3)
        message = f"{rng.choice(phrases[outcome])} {_notes(rng)}"
        rows.append(
            [
                uuid.UUID(int=rng.getrandbits(128)),
                message,
                rng.choice(["Ana", "Bo", "Chen", "Dara"]),
                rng.choice(["True", "False"]),
                f"{rng.uniform(5, 900):.2f}",
                LONG_LABELS[outcome],
            ]
        )
    return header, rows


def spreadsheet_export(n: int, rng: random.Random):
    """A spreadsheet export: TRUE/FALSE labels, revenue with separators, a constant currency, dates."""
    header = ["Order Date", "Region", "Units", "Revenue", "Currency", "Discount %", "Converted"]
    rows = []
    for _ in range(n):
        units = rng.randint(1, 400)
        revenue = units * rng.uniform(8, 30)
        discount = rng.choice([0, 5, 10, 15, 20])
        rows.append(
            [
                (dt.date(2024, 1, 1) + dt.timedelta(days=rng.randint(0, 300))).isoformat(),
                rng.choice(["North", "South", "East", "West"]),
                units,
                _thousands(revenue),
                "EUR",
                discount,
                "TRUE" if discount >= 10 and rng.random() < 0.8 or rng.random() < 0.15 else "FALSE",
            ]
        )
    return header, rows


def web_sessions(n: int, rng: random.Random):
    """UUID ids, a high-cardinality page path, a mixed number/text column, a 60 % missing referrer;
    labels "stay"/"leave"."""
    header = ["session_id", "page path", "duration (s)", "device", "referrer", "items", "result"]
    rows = []
    for _ in range(n):
        duration = rng.expovariate(1 / 120)
        items = rng.choice([str(rng.randint(0, 12)), "none", "many"])
        rows.append(
            [
                uuid.UUID(int=rng.getrandbits(128)),
                f"/products/{rng.choice(['shoes', 'hats', 'bags'])}/{rng.randint(1, 5000)}",
                f"{duration:.1f}",
                rng.choice(["mobile", "desktop", "tablet"]),
                "" if rng.random() < 0.6 else rng.choice(["google", "newsletter", "friend"]),
                items,
                "stay" if duration > 90 or rng.random() < 0.1 else "leave",
            ]
        )
    return header, rows


def clinic_visits(n: int, rng: random.Random):
    """Datetimes with offsets and naive ones, times, names with brackets and dots; 0/1 labels
    beside a numeric-looking category and a half-empty note."""
    header = ["patient.no", "visit (local)", "visit [utc]", "check-in", "BMI", "bmi", "readmitted"]
    rows = []
    for i in range(n):
        when = dt.datetime(2023, 6, 1, 8) + dt.timedelta(hours=rng.randint(0, 8000))
        bmi = rng.gauss(27, 5)
        rows.append(
            [
                f"{i:06d}",
                when.strftime("%Y-%m-%d %H:%M"),
                (when - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S+01:00"),
                f"{rng.randint(7, 18)}:{rng.choice(['00', '15', '30', '45'])}",
                f"{bmi:.1f}",
                rng.choice(["low", "mid", "high"]),
                1 if bmi > 30 and rng.random() < 0.8 else 0,
            ]
        )
    return header, rows


# name -> (maker, rows in the committed copy, target column, labels as written)
FILES = {
    "churn.csv": (churn, 2500, "churned", ["no", "yes"]),
    "sensors.csv": (sensors, 500, "alarm", ["N", "Y"]),
    "unicode_names.csv": (unicode_names, 500, "approved", ["false", "true"]),
    "case_twins.csv": (case_twins, 500, "label", ["0", "1"]),
    "sparse_signs.csv": (sparse_signs, 500, "direction", ["-1", "1"]),
    "grades.csv": (grades, 500, "grade", ["1", "2", "3"]),
    "ticket_codes.csv": (ticket_codes, 500, "priority", ["1", "10", "2"]),
    "long_labels.csv": (long_labels, 500, "outcome", sorted(LONG_LABELS)),
    "spreadsheet_export.csv": (spreadsheet_export, 500, "Converted", ["FALSE", "TRUE"]),
    "web_sessions.csv": (web_sessions, 500, "result", ["leave", "stay"]),
    "clinic_visits.csv": (clinic_visits, 500, "readmitted", ["0", "1"]),
}


def write(name: str, out: Path, scale: float = 1.0) -> Path:
    maker, rows, _, _ = FILES[name]
    header, body = maker(max(20, int(rows * scale)), random.Random(name))
    path = out / name
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(body)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write to (default: this folder)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every file's rows (default 1)")
    parser.add_argument("files", nargs="*", default=list(FILES), help="which files (default: all)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.files:
        path = write(name, args.out, args.scale)
        print(f"{path}  {path.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
