package legacy

// usStates maps every USPS state, district, territory and military code to
// the full name.
var usStates = map[string]string{
	"AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas", "CA": "California",
	"CO": "Colorado", "CT": "Connecticut", "DE": "Delaware", "FL": "Florida", "GA": "Georgia",
	"HI": "Hawaii", "ID": "Idaho", "IL": "Illinois", "IN": "Indiana", "IA": "Iowa",
	"KS": "Kansas", "KY": "Kentucky", "LA": "Louisiana", "ME": "Maine", "MD": "Maryland",
	"MA": "Massachusetts", "MI": "Michigan", "MN": "Minnesota", "MS": "Mississippi", "MO": "Missouri",
	"MT": "Montana", "NE": "Nebraska", "NV": "Nevada", "NH": "New Hampshire", "NJ": "New Jersey",
	"NM": "New Mexico", "NY": "New York", "NC": "North Carolina", "ND": "North Dakota", "OH": "Ohio",
	"OK": "Oklahoma", "OR": "Oregon", "PA": "Pennsylvania", "RI": "Rhode Island", "SC": "South Carolina",
	"SD": "South Dakota", "TN": "Tennessee", "TX": "Texas", "UT": "Utah", "VT": "Vermont",
	"VA": "Virginia", "WA": "Washington", "WV": "West Virginia", "WI": "Wisconsin", "WY": "Wyoming",
	"DC": "District of Columbia",
	"PR": "Puerto Rico", "GU": "Guam", "VI": "U.S. Virgin Islands", "AS": "American Samoa",
	"MP": "Northern Mariana Islands",
	"AA": "Armed Forces Americas", "AE": "Armed Forces Europe", "AP": "Armed Forces Pacific",
}

// stateAliases are other spellings of states seen in hand-typed addresses
// (AP style abbreviations and common variants), lower case, without dots.
var stateAliases = map[string]string{
	"ala": "AL", "ariz": "AZ", "ark": "AR", "calif": "CA", "cal": "CA", "colo": "CO", "conn": "CT",
	"del": "DE", "fla": "FL", "ill": "IL", "ind": "IN", "kan": "KS", "kans": "KS",
	"mass": "MA", "mich": "MI", "minn": "MN", "miss": "MS", "mont": "MT", "neb": "NE", "nebr": "NE",
	"nev": "NV", "okla": "OK", "ore": "OR", "oreg": "OR", "penn": "PA", "penna": "PA", "tenn": "TN",
	"tex": "TX", "wash": "WA", "wis": "WI", "wisc": "WI", "wyo": "WY", "w va": "WV",
	"washington dc": "DC", "washington d c": "DC", "virgin islands": "VI",
}

// usCountry holds the spellings of the United States, lower case, without dots.
var usCountry = map[string]bool{
	"us": true, "usa": true, "u s": true, "u s a": true, "united states": true,
	"united states of america": true, "america": true, "the united states": true,
}

// foreignCountries maps the spellings of the countries the legacy data has
// been seen to hold (lower case, without dots) to their English name.
var foreignCountries = map[string]string{
	"canada": "Canada",
	"mexico": "Mexico", "méxico": "Mexico",
	"united kingdom": "United Kingdom", "uk": "United Kingdom", "u k": "United Kingdom",
	"great britain": "United Kingdom", "england": "United Kingdom", "scotland": "United Kingdom",
	"wales": "United Kingdom", "northern ireland": "United Kingdom",
	"ireland": "Ireland", "germany": "Germany", "deutschland": "Germany", "france": "France",
	"spain": "Spain", "españa": "Spain", "italy": "Italy", "italia": "Italy", "portugal": "Portugal",
	"netherlands": "Netherlands", "the netherlands": "Netherlands", "holland": "Netherlands",
	"belgium": "Belgium", "switzerland": "Switzerland", "austria": "Austria", "sweden": "Sweden",
	"norway": "Norway", "denmark": "Denmark", "finland": "Finland", "poland": "Poland",
	"czech republic": "Czech Republic", "czechia": "Czech Republic", "greece": "Greece",
	"australia": "Australia", "new zealand": "New Zealand", "japan": "Japan", "china": "China",
	"south korea": "South Korea", "korea": "South Korea", "india": "India", "singapore": "Singapore",
	"philippines": "Philippines", "brazil": "Brazil", "brasil": "Brazil", "argentina": "Argentina",
	"chile": "Chile", "colombia": "Colombia", "peru": "Peru", "israel": "Israel",
	"south africa": "South Africa", "nigeria": "Nigeria", "kenya": "Kenya", "egypt": "Egypt",
	"united arab emirates": "United Arab Emirates", "uae": "United Arab Emirates",
}

// canadianProvinces are the two-letter province codes, which with a
// Canadian postal code (A1A 1A1) identify a Canadian address without a
// country.
var canadianProvinces = map[string]bool{
	"AB": true, "BC": true, "MB": true, "NB": true, "NL": true, "NS": true, "NT": true,
	"NU": true, "ON": true, "PE": true, "QC": true, "SK": true, "YT": true,
}

// streetSuffixes are the USPS street suffixes and their common spellings
// (lower case, without dots); a word of these ends a street name when an
// address does not separate the street from the city by a comma.
var streetSuffixes = map[string]bool{
	"st": true, "street": true, "ave": true, "av": true, "avenue": true, "rd": true, "road": true,
	"blvd": true, "boulevard": true, "dr": true, "drive": true, "ln": true, "lane": true,
	"ct": true, "court": true, "pl": true, "place": true, "way": true, "ter": true, "terrace": true,
	"cir": true, "circle": true, "hwy": true, "highway": true, "pkwy": true, "parkway": true,
	"sq": true, "square": true, "trl": true, "trail": true, "loop": true, "row": true, "aly": true,
	"alley": true, "plz": true, "plaza": true, "pike": true, "tpke": true, "turnpike": true,
	"expy": true, "expressway": true, "fwy": true, "freeway": true, "xing": true, "crossing": true,
	"cv": true, "cove": true, "run": true, "path": true, "walk": true, "pt": true, "point": true,
}

// unitDesignators introduce a secondary unit (Apt 4, Suite 200, #5).
var unitDesignators = map[string]bool{
	"apt": true, "apartment": true, "suite": true, "ste": true, "unit": true, "fl": true,
	"floor": true, "rm": true, "room": true, "bldg": true, "building": true, "dept": true,
	"lot": true, "spc": true, "space": true, "trlr": true, "box": true,
}
