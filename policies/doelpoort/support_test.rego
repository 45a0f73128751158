# What the policy's tests share: the demo catalog as the gateway puts it into a policy
# input (connectors/*.yaml: each partner's roles, each dataset's section), a request
# built as gateway/policy/input.py builds it, and the decision for it.
#
# A file of tests (it ends in _test.rego), so it is never served; it holds no test_ rule.
package doelpoort.test_support

import rego.v1

import data.doelpoort.disclosure

# The policy input for one dataset of one request: who asks, for which purpose, which
# dataset, which identity key *names* were given. Never a value. The purpose's subject
# facts are left empty here; tests that need them set them.
request(requester, purpose, dataset, keys) := {
	"action": "disclose",
	"time": "2026-11-22T10:00:00Z",
	"requester": {"id": requester, "roles": roles[requester]},
	"purpose": purpose,
	"case_ref": "CTI-2026-0042",
	"has_justification": true,
	"dataset": datasets[dataset],
	"subject_keys": keys,
	"subject_facts": eligible(purpose),
}

# The facts a purpose requires, each holding: the subject the gateway would ask about.
eligible(purpose) := {fact: true | some fact in data.register.purposes[purpose].requires_facts}

default eligible(_) := {}

# The decision for a policy input (one with every key: tests of malformed input give a
# key a wrong value). regopy (rego-cpp 1.5) cannot compile `with input as` for a policy
# like this one, so each key is set on its own.
decide(inp) := d if {
	d := disclosure.decision with input.action as clean(inp.action)
		with input.time as clean(inp.time)
		with input.requester as clean(inp.requester)
		with input.purpose as clean(inp.purpose)
		with input.case_ref as clean(inp.case_ref)
		with input.has_justification as clean(inp.has_justification)
		with input.dataset as clean(inp.dataset)
		with input.subject_keys as clean(inp.subject_keys)
		with input.subject_facts as clean(inp.subject_facts)
}

# A value as regopy reads it from JSON. Without this, a string passed through a variable
# into a `with` (input or register data) comes out of regopy's sprintf() quoted
# ("purpose \"x\" is ..."): not so for what the gateway gives, which is JSON.
clean(value) := json.unmarshal(json.marshal(value))

# The usual case: the decision for a request with the dataset's first identity key.
decision(requester, purpose, dataset) := decide(request(requester, purpose, dataset, datasets[dataset].identity_keys[0]))

# A decision's reasons as a set (regopy's sort() answers a set, OPA's an array).
reasons(d) := found if {
	found := {r | r := d.reasons[_]}
}

# The register's field ops of a purpose for a dataset, for the fields the dataset has.
register_ops(purpose, dataset) := object.filter(
	data.register.purposes[purpose].datasets[dataset].field_ops,
	object.keys(datasets[dataset].fields),
)

# A dataset's domain. (A function: regopy 1.5 does not evaluate a lookup such as
# datasets[dataset].domain inside `every` correctly.)
domain_of(dataset) := datasets[dataset].domain

# The partners holding a role.
holding(role) := partners if {
	# Not `some partner, held in roles` in a comprehension: regopy 1.5 cannot parse it.
	partners := {partner | held := roles[partner]; role in held}
}

# Each partner's roles (connectors/<partner>.yaml).
roles := {
	"aivd": ["ct-infobox"],
	"dji": ["laov"],
	"dtv": ["laov"],
	"fiod": ["ct-infobox", "pnr-competent-authority"],
	"fiu": ["ct-infobox"],
	"ind": ["ct-infobox", "laov"],
	"kmar": ["ct-infobox", "laov", "pnr-competent-authority"],
	"nctv": ["ct-infobox"],
	"om": ["ct-infobox", "pnr-competent-authority"],
	"politie": ["ct-infobox", "pnr-competent-authority"],
	"voorbeeldbank": ["fec-obliged-entity"],
}

# Each dataset's section of the policy input: domain, fields with type and category,
# identity keys (connectors/<partner>.yaml, as gateway/policy/input.py gives them).
datasets := {
	"aivd/ct-signals": {
		"id": "aivd/ct-signals",
		"provider": "aivd",
		"domain": "intelligence",
		"fields": {
			"bsn": {"type": "string", "category": "identifier"},
			"name": {"type": "string", "category": "identity"},
			"date_of_birth": {"type": "date", "category": "identity"},
			"threat_level": {"type": "string", "category": "intelligence"},
			"ideology": {"type": "string", "category": "special-category"},
			"summary": {"type": "string", "category": "intelligence"},
			"assessed_on": {"type": "date", "category": "intelligence"},
		},
		"identity_keys": [["bsn"], ["name", "date_of_birth"]],
	},
	"dji/detention": {
		"id": "dji/detention",
		"provider": "dji",
		"domain": "detention",
		"fields": {
			"bsn": {"type": "string", "category": "identifier"},
			"v_number": {"type": "string", "category": "identifier"},
			"name": {"type": "string", "category": "identity"},
			"date_of_birth": {"type": "date", "category": "identity"},
			"facility": {"type": "string", "category": "detention"},
			"expected_release": {"type": "date", "category": "detention"},
			"conviction_type": {"type": "string", "category": "criminal"},
		},
		"identity_keys": [["bsn"], ["v_number"], ["name", "date_of_birth"]],
	},
	"fiu/transactions": {
		"id": "fiu/transactions",
		"provider": "fiu",
		"domain": "financial",
		"fields": {
			"bsn": {"type": "string", "category": "identifier"},
			"iban": {"type": "string", "category": "identifier"},
			"name": {"type": "string", "category": "identity"},
			"amount_eur": {"type": "number", "category": "financial"},
			"counterparty_country": {"type": "string", "category": "financial"},
			"reported_on": {"type": "date", "category": "financial"},
			"tf_indicator": {"type": "boolean", "category": "indicator"},
		},
		"identity_keys": [["bsn"], ["iban"]],
	},
	"ind/residence": {
		"id": "ind/residence",
		"provider": "ind",
		"domain": "immigration",
		"fields": {
			"v_number": {"type": "string", "category": "identifier"},
			"bsn": {"type": "string", "category": "identifier"},
			"name": {"type": "string", "category": "identity"},
			"date_of_birth": {"type": "date", "category": "identity"},
			"nationality": {"type": "string", "category": "identity"},
			"address": {"type": "address", "category": "address"},
			"residence_status": {"type": "string", "category": "immigration"},
			"lawful_residence": {"type": "boolean", "category": "immigration"},
			"status_since": {"type": "date", "category": "immigration"},
		},
		"identity_keys": [["bsn"], ["v_number"], ["name", "date_of_birth"]],
	},
	"kmar/border-crossings": {
		"id": "kmar/border-crossings",
		"provider": "kmar",
		"domain": "border",
		"fields": {
			"bsn": {"type": "string", "category": "identifier"},
			"passport_no": {"type": "string", "category": "identifier"},
			"name": {"type": "string", "category": "identity"},
			"date_of_birth": {"type": "date", "category": "identity"},
			"crossed_at": {"type": "date", "category": "travel"},
			"border_post": {"type": "string", "category": "travel"},
			"direction": {"type": "string", "category": "travel"},
		},
		"identity_keys": [["bsn"], ["passport_no"], ["name", "date_of_birth"]],
	},
	"kmar/passenger-records": {
		"id": "kmar/passenger-records",
		"provider": "kmar",
		"domain": "passenger",
		"fields": {
			"passport_no": {"type": "string", "category": "identifier"},
			"booking_ref": {"type": "string", "category": "identifier"},
			"name": {"type": "string", "category": "identity"},
			"date_of_birth": {"type": "date", "category": "identity"},
			"flight_no": {"type": "string", "category": "travel"},
			"departure_date": {"type": "date", "category": "travel"},
			"route": {"type": "string", "category": "travel"},
			"seat": {"type": "string", "category": "travel"},
			"payment_method": {"type": "string", "category": "financial"},
		},
		"identity_keys": [["passport_no"], ["name", "date_of_birth"]],
	},
	"politie/incidents": {
		"id": "politie/incidents",
		"provider": "politie",
		"domain": "police",
		"fields": {
			"bsn": {"type": "string", "category": "identifier"},
			"name": {"type": "string", "category": "identity"},
			"date_of_birth": {"type": "date", "category": "identity"},
			"address": {"type": "address", "category": "address"},
			"incident_date": {"type": "date", "category": "criminal"},
			"offence_category": {"type": "string", "category": "criminal"},
		},
		"identity_keys": [["bsn"], ["name", "date_of_birth"]],
	},
}
