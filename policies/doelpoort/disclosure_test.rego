# Tests of what every purpose shares: the shape of a decision, the refusals that do not
# depend on one purpose (unknown purpose, other actions, malformed input, identity keys,
# justification) and field ops following the dataset. Run: doelpoort policy test.
package doelpoort.disclosure_test

import rego.v1

import data.doelpoort.test_support.datasets
import data.doelpoort.test_support.decide
import data.doelpoort.test_support.decision
import data.doelpoort.test_support.reasons
import data.doelpoort.test_support.register_ops
import data.doelpoort.test_support.request

# --- an allowing decision ----------------------------------------------------------------

test_an_allow_carries_the_registers_ops_retention_and_legal_basis if {
	d := decision("politie", "ct-assessment", "ind/residence")
	d.allow == true
	count(d.reasons) == 0
	d.field_ops == register_ops("ct-assessment", "ind/residence")
	d.retention_days == data.register.purposes["ct-assessment"].retention_days
	d.legal_basis == data.register.purposes["ct-assessment"].legal_basis
}

test_a_field_no_op_names_is_left_out if {
	# status_since is declared by the dataset but named by no op: the gateway drops it.
	d := decision("politie", "ct-assessment", "ind/residence")
	not "status_since" in object.keys(d.field_ops)
}

test_ops_for_fields_the_dataset_does_not_declare_are_left_out if {
	section := object.union(datasets["ind/residence"], {"fields": object.remove(datasets["ind/residence"].fields, ["address"])})
	inp := object.union(request("politie", "ct-assessment", "ind/residence", ["bsn"]), {"dataset": section})
	d := decide(inp)
	d.allow
	d.field_ops == object.remove(register_ops("ct-assessment", "ind/residence"), ["address"])
}

test_register_ops_for_a_field_no_dataset_has_are_left_out if {
	ops := object.union(register_ops("ct-assessment", "ind/residence"), {"religion": "keep"})
	d := decision("politie", "ct-assessment", "ind/residence") with data.register.purposes["ct-assessment"].datasets["ind/residence"].field_ops as ops
	d.allow
	not "religion" in object.keys(d.field_ops)
}

# --- refusals every purpose shares ------------------------------------------------------

test_an_unknown_purpose_is_refused_without_a_legal_basis if {
	d := decision("politie", "fishing-expedition", "ind/residence")
	d.allow == false
	reasons(d) == {"purpose fishing-expedition is not in the register"}
	d.legal_basis == ""
	d.field_ops == {}
	d.retention_days == 0
}

test_a_refusal_still_names_the_purposes_legal_basis if {
	d := decision("voorbeeldbank", "ct-assessment", "ind/residence")
	not d.allow
	d.legal_basis == data.register.purposes["ct-assessment"].legal_basis
}

test_another_action_is_refused if {
	inp := object.union(request("politie", "ct-assessment", "ind/residence", ["bsn"]), {"action": "match"})
	reasons(decide(inp)) == {"only the disclose action is decided by the disclosure policy"}
}

test_malformed_input_is_refused if {
	# (A key left out altogether is tested in tests/policy/test_policy_decisions.py:
	# regopy cannot leave an input key undefined in a test.)
	good := request("politie", "ct-assessment", "ind/residence", ["bsn"])
	keys := ["action", "purpose", "requester", "has_justification", "dataset", "subject_keys"]
	cases := [[key, wrong] | key := keys[_]; wrong := [null, 7, {"x": 1}][_]]
	count(cases) == 18
	every case in cases {
		d := decide(object.union(good, {case[0]: case[1]}))
		d.allow == false
		"the policy input is malformed" in reasons(d)
	}
}

test_a_field_without_a_category_makes_the_input_malformed if {
	good := request("politie", "ct-assessment", "ind/residence", ["bsn"])
	fields := object.union(good.dataset.fields, {"nationality": {"type": "string"}})
	d := decide(object.union(good, {"dataset": {"fields": fields}}))
	not d.allow
	"the policy input is malformed" in reasons(d)
}

test_a_justification_is_required_where_the_register_says_so if {
	inp := object.union(request("politie", "pnr-request", "kmar/passenger-records", ["passport_no"]), {"has_justification": false})
	reasons(decide(inp)) == {"purpose pnr-request requires a justification"}
}

test_the_placeholder_for_no_dataset_is_refused if {
	# The pipeline asks about "no dataset" when a purpose covers none for the requester.
	inp := object.union(
		request("politie", "ct-assessment", "ind/residence", ["bsn"]),
		{"dataset": {"id": "", "provider": "", "domain": "", "fields": {}, "identity_keys": []}},
	)
	d := decide(inp)
	not d.allow
	reasons(d) == {"purpose ct-assessment does not cover  for politie"}
}

# --- identity keys -----------------------------------------------------------------------

test_no_usable_identity_key_is_refused if {
	every keys in [[], ["name"], ["date_of_birth"], ["passport_no"]] {
		d := decide(request("politie", "ct-assessment", "ind/residence", keys))
		reasons(d) == {"no identity key for ind/residence was given"}
	}
}

test_any_fully_covered_identity_key_is_enough if {
	every keys in [["bsn"], ["v_number"], ["date_of_birth", "name"]] {
		decide(request("politie", "ct-assessment", "ind/residence", keys)).allow
	}
}

test_a_missing_key_is_not_told_to_a_partner_the_purpose_is_not_granted_to if {
	d := decide(request("voorbeeldbank", "ct-assessment", "ind/residence", []))
	reasons(d) == {"purpose ct-assessment is not granted to voorbeeldbank"}
}

test_a_missing_key_is_not_told_for_a_dataset_the_grant_does_not_cover if {
	d := decide(request("ind", "ct-assessment", "fiu/transactions", []))
	reasons(d) == {"purpose ct-assessment does not cover fiu/transactions for ind"}
}

# --- a grant that releases nothing -------------------------------------------------------

test_a_grant_that_releases_no_field_is_refused if {
	# An allow with nothing to release would still answer one empty record per match:
	# the subject is in the dataset. Every op drop, misspelt fields, or both.
	every ops in [
		{"bsn": "drop", "name": "drop", "nationality": "drop"},
		{"nationalty": "keep", "residence_stat": "keep"},
		{"nationalty": "keep", "bsn": "drop"},
	] {
		d := decision("politie", "ct-assessment", "ind/residence") with data.register.purposes["ct-assessment"].datasets["ind/residence"].field_ops as ops
		reasons(d) == {"purpose ct-assessment releases no field of ind/residence"}
		d.field_ops == {}

		# Not worth saying to a requester the purpose is not granted to.
		other := decision("voorbeeldbank", "ct-assessment", "ind/residence") with data.register.purposes["ct-assessment"].datasets["ind/residence"].field_ops as ops
		reasons(other) == {"purpose ct-assessment is not granted to voorbeeldbank"}
	}
}

test_a_grant_releasing_one_field_among_drops_is_allowed if {
	ops := {"bsn": "drop", "nationality": "keep"}
	d := decision("politie", "ct-assessment", "ind/residence") with data.register.purposes["ct-assessment"].datasets["ind/residence"].field_ops as ops
	d.allow
	d.field_ops == ops
}

# --- the category allow-list, whichever purpose gives one --------------------------------

test_any_tier_list_switches_the_category_allow_list_on if {
	# ct-assessment gives no allow-list; giving it only a reduced or a pseudonym list of
	# identifiers leaves every other category to be dropped.
	expected := "purpose ct-assessment does not release identity data (field name has op pseudonymise)"
	a := decision("politie", "ct-assessment", "ind/residence") with data.register.purposes["ct-assessment"].reduced_categories as ["identifier"]
	expected in reasons(a)
	b := decision("politie", "ct-assessment", "ind/residence") with data.register.purposes["ct-assessment"].pseudonym_categories as ["identifier"]
	expected in reasons(b)
}
