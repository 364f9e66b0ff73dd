"""Deterministic employees of a company domain, shared by the sandbox's contact vendors and web pages.

The same ``(domain, seed)`` always yields the same people, so a contact revealed by the Lusha sandbox
matches the name printed on the simulated company website and the address ZeroBounce is asked about.
"""
from __future__ import annotations

import dataclasses
import random
import re
import uuid

from nightly_pipeline_sandbox.vendors_common import normalise_domain

MIN_PEOPLE = 3
MAX_PEOPLE = 12

# Seniority ranks as the sandbox's Lusha filter values: 1 entry level … 6 C-suite/founder/owner.
SENIORITY_LABELS: dict[int, str] = {
    1: "Entry", 2: "Senior", 3: "Manager", 4: "Director", 5: "VP", 6: "C-Suite",
}

_PERSON_NAMESPACE = uuid.UUID("5d1b7a52-4c1e-4a63-9a8e-0c6f2f1d9b10")


@dataclasses.dataclass(frozen=True)
class Role:
    title: str
    department: str
    seniority: int
    unique: bool = True  # at most one per company (one CEO, but several engineers)


@dataclasses.dataclass(frozen=True)
class Person:
    person_id: str
    first_name: str
    last_name: str
    title: str
    department: str
    seniority: int
    email: str
    mobile: str
    linkedin_url: str
    domain: str
    company_name: str

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    @property
    def seniority_label(self) -> str:
        return SENIORITY_LABELS[self.seniority]


LEADER_ROLES: tuple[Role, ...] = (
    Role("CEO", "Executive", 6),
    Role("Founder", "Executive", 6),
    Role("Founder & CEO", "Executive", 6),
    Role("Managing Director", "Executive", 6),
)

STAFF_ROLES: tuple[Role, ...] = (
    Role("Co-Founder", "Executive", 6),
    Role("COO", "Executive", 6),
    Role("CFO", "Finance", 6),
    Role("CTO", "Engineering", 6),
    Role("General Manager", "Executive", 5),
    Role("Head of Sales", "Sales", 5),
    Role("Sales Director", "Sales", 4),
    Role("Business Development Manager", "Business Development", 3),
    Role("Sales Manager", "Sales", 3),
    Role("Account Executive", "Sales", 1, unique=False),
    Role("Sales Executive", "Sales", 1, unique=False),
    Role("Marketing Manager", "Marketing", 3),
    Role("Digital Marketing Executive", "Marketing", 1, unique=False),
    Role("Operations Manager", "Operations", 3),
    Role("Operations Executive", "Operations", 1, unique=False),
    Role("Project Manager", "Operations", 3, unique=False),
    Role("HR Manager", "Human Resources", 3),
    Role("HR Executive", "Human Resources", 1),
    Role("Finance Manager", "Finance", 3),
    Role("Accountant", "Finance", 2),
    Role("IT Manager", "Information Technology", 3),
    Role("Engineering Manager", "Engineering", 3),
    Role("Software Engineer", "Engineering", 1, unique=False),
    Role("Senior Software Engineer", "Engineering", 2, unique=False),
    Role("Product Manager", "Product", 3),
    Role("Customer Service Executive", "Customer Service", 1, unique=False),
    Role("Office Manager", "Administrative", 3),
)

DEPARTMENTS: tuple[str, ...] = tuple(sorted({r.department for r in LEADER_ROLES + STAFF_ROLES}))

# (given names, family names, weight) per naming tradition common in Singapore workplaces.
_CHINESE_SURNAMES = ("Tan", "Lim", "Lee", "Ng", "Ong", "Wong", "Goh", "Chua", "Chan", "Koh", "Teo", "Ang",
                     "Yeo", "Tay", "Ho", "Low", "Toh", "Sim", "Chong", "Chia")
_NAME_POOLS: tuple[tuple[tuple[str, ...], tuple[str, ...], int], ...] = (
    (("Wei Ming", "Jia Hui", "Zhi Hao", "Xin Yi", "Jun Jie", "Hui Min", "Kai Wen", "Li Ting", "Yong Sheng",
      "Mei Ling", "Jia Wei", "Shu Fen", "Wen Jie", "Pei Shan", "Guo Liang", "Siew Ling"), _CHINESE_SURNAMES, 45),
    (("Jason", "Michelle", "Kelvin", "Rachel", "Bryan", "Cheryl", "Darren", "Melissa", "Eugene", "Joanne",
      "Marcus", "Vanessa"), _CHINESE_SURNAMES, 15),
    (("Muhammad Hafiz", "Nur Aisyah", "Ahmad Firdaus", "Siti Nurhaliza", "Faizal", "Nurul Huda", "Haziq",
      "Farah", "Irfan", "Syafiq", "Zulkifli", "Amirah"),
     ("Rahman", "Ismail", "Hassan", "Abdullah", "Osman", "Yusof", "Salleh", "Ibrahim", "Hamid", "Aziz"), 15),
    (("Priya", "Arun", "Karthik", "Deepa", "Rajesh", "Divya", "Suresh", "Kavitha", "Vikram", "Anita", "Ravi",
      "Meena", "Ganesh", "Lakshmi"),
     ("Kumar", "Nair", "Pillai", "Menon", "Raj", "Singh", "Krishnan", "Subramaniam", "Ramasamy", "Naidu",
      "Chandran", "Gill"), 15),
    (("James", "Sarah", "David", "Emma", "Michael", "Rachel", "Daniel", "Sophie", "Andrew", "Olivia", "Mark",
      "Hannah"),
     ("Walker", "Thompson", "Smith", "Brown", "Wilson", "Taylor", "Clarke", "Evans", "Hughes", "Martin"), 10),
)

# How a company spells work addresses; one pattern per company, as real mail servers do.
EMAIL_PATTERNS: tuple[str, ...] = ("{first}", "{first}.{last}", "{f}{last}", "{first}{l}", "{first}_{last}",
                                   "{last}.{first}")


def people_for(domain: str, company_name: str, seed: int = 7) -> list[Person]:
    """The 3–12 employees of the company at ``domain``: a leader first, then staff."""
    domain = normalise_domain(domain)
    rng = random.Random(f"people:{seed}:{domain}")
    pattern = rng.choice(EMAIL_PATTERNS)
    roles = _company_roles(rng, rng.randint(MIN_PEOPLE, MAX_PEOPLE))
    used_locals: set[str] = set()
    used_names: set[tuple[str, str]] = set()
    people = []
    for index, role in enumerate(roles):
        first, last = _distinct_name(rng, used_names)
        local = _unique_local_part(pattern, first, last, used_locals)
        person_id = str(uuid.uuid5(_PERSON_NAMESPACE, f"{seed}:{domain}:{index}"))
        people.append(Person(
            person_id=person_id, first_name=first, last_name=last, title=role.title,
            department=role.department, seniority=role.seniority, email=f"{local}@{domain}",
            mobile=_mobile_number(rng), linkedin_url=_linkedin_url(first, last, person_id),
            domain=domain, company_name=company_name))
    return people


def _company_roles(rng: random.Random, count: int) -> list[Role]:
    roles = [rng.choice(LEADER_ROLES)]
    available = list(STAFF_ROLES)
    while len(roles) < count:
        role = rng.choice(available)
        roles.append(role)
        if role.unique:
            available.remove(role)
    return roles


def _distinct_name(rng: random.Random, used: set[tuple[str, str]]) -> tuple[str, str]:
    pools = [(given, family) for given, family, _ in _NAME_POOLS]
    weights = [weight for _, _, weight in _NAME_POOLS]
    while True:
        given, family = rng.choices(pools, weights=weights)[0]
        name = (rng.choice(given), rng.choice(family))
        if name not in used:
            used.add(name)
            return name


def _ascii_token(name: str) -> str:
    return re.sub(r"[^a-z]", "", name.lower())


def _unique_local_part(pattern: str, first: str, last: str, used: set[str]) -> str:
    first_token, last_token = _ascii_token(first), _ascii_token(last)
    base = pattern.format(first=first_token, last=last_token, f=first_token[0], l=last_token[0])
    local, suffix = base, 1
    while local in used:
        suffix += 1
        local = f"{base}{suffix}"
    used.add(local)
    return local


def _mobile_number(rng: random.Random) -> str:
    # Singapore mobile numbers are eight digits starting with 8 or 9.
    digits = rng.choice("89") + "".join(rng.choice("0123456789") for _ in range(7))
    return f"+65 {digits[:4]} {digits[4:]}"


def _linkedin_url(first: str, last: str, person_id: str) -> str:
    slug = "-".join(part for part in re.split(r"[^a-z]+", f"{first} {last}".lower()) if part)
    return f"https://www.linkedin.com/in/{slug}-{person_id.replace('-', '')[:8]}"
