"""Regenerate the synthetic ACRA sample shipped in nightly_pipeline/data/acra_sample.csv.

The layout follows the data.gov.sg "ACRA Information on Corporate Entities" datasets; the rows
are invented but deterministic, so the sandbox world built from them is the same on every machine.
"""
from __future__ import annotations

import csv
import random
import sys
from pathlib import Path

SSIC = [
    ("62011", "DEVELOPMENT OF SOFTWARE AND APPLICATIONS (EXCEPT GAMES AND CYBERSECURITY)", "software"),
    ("62021", "INFORMATION TECHNOLOGY CONSULTANCY (EXCEPT CYBERSECURITY)", "it consulting"),
    ("62090", "INFORMATION TECHNOLOGY AND COMPUTER SERVICE ACTIVITIES N.E.C.", "it services"),
    ("63110", "DATA PROCESSING, HOSTING AND RELATED ACTIVITIES", "data"),
    ("70201", "MANAGEMENT CONSULTANCY SERVICES", "consulting"),
    ("73100", "ADVERTISING ACTIVITIES", "marketing"),
    ("46900", "WHOLESALE TRADE OF A VARIETY OF GOODS WITHOUT A DOMINANT PRODUCT", "wholesale"),
    ("56111", "RESTAURANTS", "food"),
    ("41001", "GENERAL CONTRACTORS (BUILDING CONSTRUCTION INCLUDING MAJOR UPGRADING WORKS)", "construction"),
    ("68101", "REAL ESTATE DEVELOPERS", "real estate"),
    ("52291", "FREIGHT FORWARDING SERVICES", "logistics"),
    ("72101", "RESEARCH AND EXPERIMENTAL DEVELOPMENT ON BIOTECHNOLOGY, LIFE AND MEDICAL SCIENCE", "biotech"),
    ("85501", "TRAINING COURSES FOR PROFESSIONALS", "education"),
    ("64202", "FINANCIAL HOLDING COMPANIES", "finance"),
]
WEIGHTS = [22, 12, 10, 6, 10, 6, 8, 6, 5, 4, 5, 3, 2, 1]

FIRST = ["Acme", "Lion", "Merlion", "Orchid", "Raffles", "Marina", "Harbour", "Kallang", "Tanjong",
         "Bukit", "Jurong", "Changi", "Sentosa", "Novena", "Tampines", "Bedok", "Clementi", "Pioneer",
         "Straits", "Equator", "Monsoon", "Banyan", "Durian", "Pandan", "Serangoon", "Katong",
         "Telok", "Bishan", "Woodlands", "Punggol", "Redhill", "Dover", "Nexus", "Quantum", "Vertex",
         "Apex", "Summit", "Zenith", "Helix", "Cobalt", "Indigo", "Saffron", "Jade", "Pearl", "Coral"]
SECOND = {
    "software": ["Robotics", "Cloud", "Software", "Labs", "Apps", "Digital", "Systems", "AI"],
    "it consulting": ["Tech Consulting", "IT Advisory", "Solutions", "Technologies"],
    "it services": ["IT Services", "Infotech", "Networks", "Computing"],
    "data": ["Data", "Analytics", "Hosting", "Datacentre"],
    "consulting": ["Consulting", "Advisory", "Partners", "Management"],
    "marketing": ["Media", "Creative", "Advertising", "Brands"],
    "wholesale": ["Trading", "Supplies", "Distribution", "Imports"],
    "food": ["Kitchen", "Eating House", "Bistro", "Kopitiam"],
    "construction": ["Builders", "Engineering", "Construction", "Contractors"],
    "real estate": ["Land", "Properties", "Estates", "Development"],
    "logistics": ["Logistics", "Freight", "Shipping", "Cargo"],
    "biotech": ["Biosciences", "Therapeutics", "Biotech", "Genomics"],
    "education": ["Academy", "Learning", "Training", "Institute"],
    "finance": ["Capital", "Holdings", "Ventures", "Investments"],
}
STREETS = ["ANSON ROAD", "RAFFLES PLACE", "ROBINSON ROAD", "SCIENCE PARK ROAD", "ALEXANDRA ROAD",
           "UBI AVENUE 1", "TAI SENG STREET", "KAKI BUKIT ROAD 1", "JURONG EAST STREET 21",
           "CECIL STREET", "MARINA BOULEVARD", "NORTH BRIDGE ROAD", "KALLANG AVENUE", "ONE-NORTH CRESCENT"]
STATUSES = [("Live Company", 80), ("Live", 6), ("Struck Off", 8), ("Gazetted to be Struck Off", 3),
            ("Dissolved - Members' Voluntary Winding Up", 3)]
COLUMNS = ["uen", "issuance_agency_id", "entity_name", "entity_type_description",
           "company_type_description", "entity_status_description", "registration_incorporation_date",
           "uen_issue_date", "block", "street_name", "building_name", "postal_code",
           "primary_ssic_code", "primary_ssic_description", "website"]


def _uen(rng: random.Random, year: int, business: bool) -> str:
    letter = rng.choice("ABCDEGHJKLMNRWXZ")
    if business:
        return f"53{rng.randrange(10**5, 10**6):06d}{letter}"
    return f"{year}{rng.randrange(10**4, 10**5):05d}{letter}"


def rows(n: int = 300, seed: int = 20261129) -> list[dict[str, str]]:
    rng = random.Random(seed)
    seen_names: set[str] = set()
    out = []
    while len(out) < n:
        code, desc, kind = rng.choices(SSIC, weights=WEIGHTS)[0]
        name_core = f"{rng.choice(FIRST)} {rng.choice(SECOND[kind])}"
        if name_core in seen_names:
            continue
        seen_names.add(name_core)
        business = rng.random() < 0.08
        year = rng.randint(1995, 2024)
        date = f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        status = rng.choices([s for s, _ in STATUSES], weights=[w for _, w in STATUSES])[0]
        suffix = "" if business else rng.choice([" PTE. LTD.", " PTE LTD", " PRIVATE LIMITED"])
        name = (name_core.upper() + suffix).strip()
        slug = name_core.lower().replace(" ", "")
        website = ""
        r = rng.random()
        if r < 0.20:
            website = f"https://www.{slug}.com.sg"
        elif r < 0.30:
            website = f"{slug}.sg"
        elif r < 0.38:
            website = f"http://{slug}.com/"
        out.append({
            "uen": _uen(rng, year, business),
            "issuance_agency_id": "ACRA",
            "entity_name": name,
            "entity_type_description": "Business" if business else "Local Company",
            "company_type_description": "" if business else "Private Company Limited by Shares",
            "entity_status_description": status,
            "registration_incorporation_date": date,
            "uen_issue_date": date,
            "block": str(rng.randint(1, 200)),
            "street_name": rng.choice(STREETS),
            "building_name": "",
            "postal_code": f"{rng.randint(1, 82):02d}{rng.randint(0, 9999):04d}",
            "primary_ssic_code": code,
            "primary_ssic_description": desc,
            "website": website,
        })
    return out


def main() -> None:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else (
        Path(__file__).resolve().parent.parent / "nightly_pipeline" / "data" / "acra_sample.csv")
    with target.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows())
    print(target)


if __name__ == "__main__":
    main()
