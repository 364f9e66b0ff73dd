"""What each industry's simulated websites talk about, keyed by the ACRA sample's SSIC codes.

The words are chosen so that an ICP written in ordinary sales language ("SaaS", "freight forwarding",
"F&B") matches the right companies and not the others.
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Industry:
    key: str
    phrase: str                        # "a software company"
    tagline: str
    pitch: tuple[str, ...]             # sentences for the home and about pages
    words: tuple[str, ...]             # vocabulary that marks the industry in page text
    keywords: tuple[str, ...]          # what the site lists in <meta name="keywords">
    offerings: tuple[str, ...]         # products or services, for listings
    roles: tuple[str, ...]             # job titles on the careers page
    employees: tuple[int, int]         # plausible headcount range
    platforms: tuple[str, ...]         # site builders such businesses tend to use
    sells_online: bool = False         # pricing pages are common


_SOFTWARE_ROLES = ("Software Engineer", "Senior Backend Engineer", "Frontend Engineer", "DevOps Engineer",
                   "Product Manager", "QA Engineer", "UI/UX Designer", "Customer Success Manager",
                   "Data Engineer", "Solutions Architect")
_OFFICE_ROLES = ("Account Executive", "Business Development Manager", "Operations Executive",
                 "Admin Assistant", "Finance Executive", "Marketing Executive", "HR Executive")

INDUSTRIES: dict[str, Industry] = {industry.key: industry for industry in (
    Industry(
        "software", "a software company", "Cloud software that grows with your business",
        ("We build SaaS products on a secure cloud platform used by teams across Singapore and Southeast Asia.",
         "Our platform connects to the tools you already use through open APIs and ready-made integrations.",
         "Customers subscribe monthly and get a real-time dashboard, workflow automation and analytics."),
        ("saas", "platform", "cloud", "api", "integrations", "dashboard", "subscription", "automation"),
        ("saas", "b2b software", "cloud platform", "workflow automation", "api integration", "analytics"),
        ("Cloud Platform", "Mobile App", "API Gateway", "Analytics Dashboard", "Workflow Automation Suite",
         "Customer Portal"),
        _SOFTWARE_ROLES, (5, 250), ("Next.js", "WordPress", "Webflow"), sells_online=True),
    Industry(
        "it_consulting", "an IT consultancy", "Technology advice you can act on",
        ("We advise companies on digital transformation, cloud migration and IT strategy.",
         "Our consultants run technology assessments and lead enterprise system implementations.",
         "From ERP selection to cloud migration, we manage the project end to end."),
        ("consultancy", "digital transformation", "cloud migration", "it strategy", "implementation", "erp"),
        ("it consulting", "digital transformation", "cloud migration", "erp implementation", "it strategy"),
        ("IT Strategy Review", "Cloud Migration", "ERP Implementation", "Digital Transformation Programme",
         "Technology Due Diligence"),
        ("IT Consultant", "Senior Business Analyst", "Project Manager", "Solutions Architect",
         "ERP Functional Consultant"), (5, 120), ("WordPress", "Wix", "Squarespace")),
    Industry(
        "it_services", "an IT services company", "Managed IT that keeps your office running",
        ("We provide managed IT services, helpdesk support and network infrastructure for SMEs.",
         "Our engineers handle cybersecurity hardening, backups and Microsoft 365 administration.",
         "Service plans include on-site support and 24/7 monitoring of servers and networks."),
        ("managed services", "helpdesk", "network", "infrastructure", "it support", "microsoft 365"),
        ("managed it services", "it support", "network infrastructure", "helpdesk", "cloud backup"),
        ("Managed IT Support", "Network Setup", "Cloud Backup", "Microsoft 365 Administration",
         "Cybersecurity Hardening"),
        ("IT Support Engineer", "Network Engineer", "Systems Administrator", "Helpdesk Executive",
         "Service Delivery Manager"), (5, 150), ("WordPress", "Wix"), sells_online=True),
    Industry(
        "data", "a data and hosting company", "Your data, hosted and analysed in Singapore",
        ("We run data processing and hosting from Tier III data centres in Singapore.",
         "Clients use our data warehouse, analytics and machine learning services on a secure cloud.",
         "Every hosting plan includes managed backups, monitoring and a 99.95% uptime SLA."),
        ("data", "hosting", "data centre", "analytics", "data warehouse", "machine learning", "cloud"),
        ("data analytics", "cloud hosting", "data warehouse", "machine learning", "colocation"),
        ("Managed Hosting", "Data Warehouse", "Colocation Rack", "Analytics Platform", "GPU Cloud"),
        ("Data Engineer", "Data Scientist", "Site Reliability Engineer", "Data Centre Technician",
         "Cloud Solutions Architect"), (5, 200), ("Next.js", "WordPress"), sells_online=True),
    Industry(
        "consulting", "a management consultancy", "Strategy, operations and growth advisory",
        ("We help leadership teams with business strategy, operations improvement and market entry.",
         "Our advisory practice covers corporate finance, organisational design and change management.",
         "Clients range from family businesses to regional listed groups."),
        ("advisory", "strategy", "management consulting", "operations", "market entry", "change management"),
        ("management consulting", "business strategy", "advisory", "market entry", "operations improvement"),
        ("Strategy Workshop", "Market Entry Study", "Operations Review", "Organisation Design",
         "Board Advisory"),
        ("Associate Consultant", "Senior Consultant", "Engagement Manager", "Research Analyst"),
        (3, 80), ("WordPress", "Squarespace", "Wix")),
    Industry(
        "marketing", "a creative and advertising agency", "Campaigns people remember",
        ("We are a creative agency for branding, digital advertising and social media campaigns.",
         "Our team plans media, produces content and runs performance marketing with measurable results.",
         "Brands hire us for SEO, paid search and influencer marketing across Southeast Asia."),
        ("advertising", "branding", "creative", "digital marketing", "social media", "seo", "campaign"),
        ("digital marketing", "advertising agency", "branding", "social media marketing", "seo"),
        ("Brand Identity", "Social Media Management", "Paid Search Campaign", "Video Production",
         "SEO Audit"),
        ("Account Manager", "Graphic Designer", "Copywriter", "Performance Marketing Specialist",
         "Social Media Executive"), (3, 100), ("WordPress", "Webflow", "Squarespace")),
    Industry(
        "wholesale", "a wholesale trading company", "Reliable supply for retailers and distributors",
        ("We import and distribute a wide range of goods to retailers, hotels and distributors.",
         "Our warehouse in Singapore holds stock for fast wholesale delivery and bulk orders.",
         "Trade customers order online or through our sales team at wholesale prices."),
        ("wholesale", "distribution", "import", "trading", "bulk orders", "supplier", "warehouse"),
        ("wholesale", "distributor", "trading company", "import export", "bulk supply"),
        ("Household Goods Carton", "Packaged Food Pallet", "Cleaning Supplies Case", "Electronics Accessories Box",
         "Stationery Bundle"),
        ("Sales Executive", "Warehouse Supervisor", "Purchasing Executive", "Delivery Driver",
         "Logistics Coordinator"), (5, 120), ("WooCommerce", "Shopify", "WordPress"), sells_online=True),
    Industry(
        "food", "a food and beverage business", "Good food, served daily",
        ("We serve local favourites and fresh dishes made every day in our kitchen.",
         "Our restaurant caters for office lunches, events and family celebrations.",
         "Order online for delivery or book a table for dine-in."),
        ("restaurant", "f&b", "menu", "catering", "dine-in", "delivery", "kitchen"),
        ("restaurant", "f&b", "catering", "food delivery", "halal food"),
        ("Signature Laksa", "Chicken Rice Set", "Nasi Lemak Platter", "Kopi and Kaya Toast", "Catering Buffet"),
        ("Service Crew", "Cook", "Kitchen Assistant", "Outlet Manager"), (3, 60),
        ("Wix", "Shopify", "WordPress")),
    Industry(
        "construction", "a building contractor", "Building Singapore, safely and on time",
        ("We are a general contractor for building construction, A&A works and major upgrading.",
         "Our project teams deliver commercial, industrial and residential developments.",
         "We hold BCA registration and a strong workplace safety and health record."),
        ("construction", "contractor", "building", "renovation", "bca", "project management", "civil works"),
        ("general contractor", "building construction", "renovation", "bca registered", "civil engineering"),
        ("Commercial Fit-out", "Industrial Building", "Addition and Alteration Works", "Structural Repairs",
         "Design and Build"),
        ("Site Supervisor", "Project Engineer", "Quantity Surveyor", "Safety Coordinator"), (10, 300),
        ("WordPress", "Wix")),
    Industry(
        "real_estate", "a real estate developer", "Homes and workspaces built to last",
        ("We develop residential and commercial properties in Singapore and the region.",
         "Our portfolio includes condominiums, business parks and mixed-use developments.",
         "Every development is planned for long-term value and sustainable design."),
        ("property", "real estate", "development", "condominium", "commercial property", "leasing"),
        ("real estate", "property development", "commercial leasing", "residential property"),
        ("Riverside Residences", "Business Park Phase 2", "Mixed-use Tower", "Serviced Apartments",
         "Industrial Units"),
        ("Leasing Executive", "Development Manager", "Property Manager", "Asset Manager"), (5, 150),
        ("WordPress", "Squarespace")),
    Industry(
        "logistics", "a freight forwarder", "Freight forwarding across Asia and beyond",
        ("We handle sea freight, air freight and customs clearance for importers and exporters.",
         "Our logistics team manages warehousing, trucking and last-mile delivery from Singapore.",
         "Shippers track every consignment online from pickup to delivery."),
        ("freight", "logistics", "shipping", "customs", "warehousing", "air freight", "sea freight"),
        ("freight forwarding", "logistics", "customs clearance", "sea freight", "air freight"),
        ("Sea Freight FCL", "Air Freight Express", "Customs Clearance", "Bonded Warehousing",
         "Cross-border Trucking"),
        ("Freight Operations Executive", "Customs Documentation Officer", "Warehouse Assistant",
         "Logistics Sales Executive"), (5, 200), ("WordPress", "Wix")),
    Industry(
        "biotech", "a biotechnology research company", "Science for better health",
        ("We research new diagnostics and therapeutics in our laboratories at one-north.",
         "Our scientists work on genomics, biomarkers and cell therapy with hospital partners.",
         "We run clinical collaborations and license our platform to pharmaceutical companies."),
        ("biotech", "research", "laboratory", "genomics", "diagnostics", "clinical", "therapeutics"),
        ("biotechnology", "life sciences", "diagnostics", "genomics", "clinical research"),
        ("Diagnostic Assay", "Biomarker Panel", "Cell Therapy Programme", "Genomic Sequencing Service",
         "Research Collaboration"),
        ("Research Scientist", "Laboratory Technician", "Clinical Research Associate", "Bioinformatician"),
        (5, 120), ("WordPress", "Squarespace")),
    Industry(
        "education", "a professional training provider", "Skills for the next step in your career",
        ("We run professional training courses and certifications for working adults.",
         "Courses are taught by practitioners and many are eligible for SkillsFuture funding.",
         "Companies send teams to our corporate training and workshops."),
        ("training", "courses", "workshop", "certification", "skillsfuture", "learning", "corporate training"),
        ("corporate training", "professional courses", "skillsfuture", "certification", "workshops"),
        ("Project Management Course", "Data Analytics Bootcamp", "Leadership Workshop",
         "Digital Marketing Certificate", "Excel for Professionals"),
        ("Trainer", "Course Coordinator", "Learning Designer", "Training Sales Executive"), (3, 60),
        ("WordPress", "Wix", "Squarespace"), sells_online=True),
    Industry(
        "finance", "an investment holding company", "Long-term capital for growing companies",
        ("We are an investment holding company with interests in technology, property and services.",
         "Our team manages a portfolio of private equity and venture investments in Asia.",
         "We partner with founders and management teams for the long term."),
        ("investment", "holding company", "portfolio", "private equity", "venture capital", "capital"),
        ("investment holding", "private equity", "venture capital", "family office"),
        ("Growth Capital", "Venture Investment", "Portfolio Management", "Co-investment"),
        ("Investment Analyst", "Portfolio Manager", "Fund Accountant"), (2, 40), ("Squarespace", "WordPress")),
    Industry(
        "general", "a Singapore company", "Serving Singapore businesses",
        ("We serve businesses and consumers across Singapore.",
         "Our team focuses on quality, reliability and service.",
         "Contact us to find out how we can help."),
        ("services", "solutions", "customers", "quality"),
        ("services", "solutions"),
        ("Standard Service", "Premium Service", "Custom Project"),
        _OFFICE_ROLES, (2, 50), ("WordPress", "Wix")),
)}

# SSIC 2020 codes that occur in the ACRA sample; anything else falls back on the description.
_SSIC_INDUSTRY = {
    "62011": "software", "62021": "it_consulting", "62090": "it_services", "63110": "data",
    "70201": "consulting", "73100": "marketing", "46900": "wholesale", "56111": "food",
    "41001": "construction", "68101": "real_estate", "52291": "logistics", "72101": "biotech",
    "85501": "education", "64202": "finance",
}
_DESCRIPTION_HINTS = (
    ("SOFTWARE", "software"), ("CONSULTANCY", "consulting"), ("INFORMATION TECHNOLOGY", "it_services"),
    ("DATA", "data"), ("ADVERTISING", "marketing"), ("WHOLESALE", "wholesale"), ("RESTAURANT", "food"),
    ("FOOD", "food"), ("CONSTRUCTION", "construction"), ("REAL ESTATE", "real_estate"),
    ("FREIGHT", "logistics"), ("BIOTECHNOLOGY", "biotech"), ("TRAINING", "education"),
    ("HOLDING", "finance"), ("FINANCIAL", "finance"),
)


def industry_for(ssic_code: str, ssic_description: str) -> Industry:
    key = _SSIC_INDUSTRY.get(ssic_code.strip())
    if key is None:
        upper = ssic_description.upper()
        key = next((k for hint, k in _DESCRIPTION_HINTS if hint in upper), "general")
    return INDUSTRIES[key]


# A look-alike's name tells what it does; its site talks about that trade, not the original's.
LOOKALIKE_TRADES: tuple[tuple[str, str], ...] = (
    ("TRADING", "wholesale"), ("HOLDINGS", "finance"), ("ENGINEERING", "construction"),
    ("SERVICES", "general"), ("INTERNATIONAL", "wholesale"),
)
