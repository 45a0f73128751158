# pnr-request: passenger data demanded by a competent authority. Strictly necessary fields
# only: the travel in clear, who travelled only pseudonymised, masked or generalised,
# payment never; passenger records only; always with a justification.
package doelpoort.pnr_request_test

import rego.v1

import data.doelpoort.test_support.clean
import data.doelpoort.test_support.decide
import data.doelpoort.test_support.reasons
import data.doelpoort.test_support.request

# A competent authority's request by passport number.
pnr_request(partner) := request(partner, "pnr-request", "kmar/passenger-records", ["passport_no"])

# The police's decision with one field's op set to op in the register.
with_op(field, op) := d if {
	ops := clean(object.union(data.register.purposes["pnr-request"].datasets["kmar/passenger-records"].field_ops, {field: op}))
	d := decide(pnr_request("politie")) with data.register.purposes["pnr-request"].datasets["kmar/passenger-records"].field_ops as ops
}

test_a_competent_authority_gets_only_the_strictly_necessary_fields if {
	every partner in ["fiod", "kmar", "om", "politie"] {
		d := decide(pnr_request(partner))
		d.allow
		d.field_ops == {
			"passport_no": "mask",
			"booking_ref": "pseudonymise",
			"name": "pseudonymise",
			"date_of_birth": "generalise:year",
			"flight_no": "keep",
			"departure_date": "keep",
			"route": "keep",
		}
		d.retention_days == 183
	}
}

test_seat_and_payment_never_leave if {
	d := decide(pnr_request("kmar"))
	not "seat" in object.keys(d.field_ops)
	not "payment_method" in object.keys(d.field_ops)
}

test_a_request_without_justification_is_refused if {
	inp := object.union(pnr_request("politie"), {"has_justification": false})
	reasons(decide(inp)) == {"purpose pnr-request requires a justification"}
}

test_it_refuses_more_than_the_strictly_necessary if {
	reduced := "only pseudonymised, masked or generalised"
	cases := [
		["payment_method", "keep", "does not release financial data"],
		["payment_method", "pseudonymise", "does not release financial data"],
		["payment_method", "exists", "does not release financial data"],
		["name", "keep", concat(" ", ["releases identity data", reduced])],
		["date_of_birth", "keep", concat(" ", ["releases identity data", reduced])],
		["passport_no", "keep", concat(" ", ["releases identifier data", reduced])],
		["passport_no", "exists", concat(" ", ["releases identifier data", reduced])],
	]
	every c in cases {
		reasons(with_op(c[0], c[1])) == {concat("", ["purpose pnr-request ", c[2], " (field ", c[0], " has op ", c[1], ")"])}
	}
}

test_it_accepts_reduced_identities_and_travel_data if {
	every c in [["name", "mask"], ["booking_ref", "drop"], ["departure_date", "generalise:month"]] {
		with_op(c[0], c[1]).allow
	}
}

test_it_covers_passenger_records_only if {
	added := {
		"politie/incidents": {"field_ops": {"bsn": "pseudonymise", "incident_date": "generalise:month"}},
		"kmar/border-crossings": {"field_ops": {"bsn": "pseudonymise", "crossed_at": "keep"}},
	}
	datasets := object.union(data.register.purposes["pnr-request"].datasets, added)
	every dataset, domain in {"politie/incidents": "police", "kmar/border-crossings": "border"} {
		d := decide(request("politie", "pnr-request", dataset, ["bsn"])) with data.register.purposes["pnr-request"].datasets as datasets
		concat("", ["purpose pnr-request only covers passenger data; ", dataset, " is ", domain, " data"]) in reasons(d)
	}
}

test_it_is_not_granted_to_ct_infobox_only_partners if {
	every partner in ["aivd", "nctv", "ind", "fiu"] {
		reasons(decide(pnr_request(partner))) == {concat("", ["purpose pnr-request is not granted to ", partner])}
	}
}
