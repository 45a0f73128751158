# tf-screening: terrorist-financing signals from FIU-Nederland to obliged banks. Only
# pseudonymised identifiers and the indicator, only FIU transaction data, whatever a
# register edit says.
package doelpoort.tf_screening_test

import rego.v1

import data.doelpoort.test_support.clean
import data.doelpoort.test_support.decide
import data.doelpoort.test_support.decision
import data.doelpoort.test_support.reasons
import data.doelpoort.test_support.request

# The bank's request, by IBAN.
bank_decision := d if {
	d := decide(request("voorbeeldbank", "tf-screening", "fiu/transactions", ["iban"]))
}

# The bank's decision with one field's op set to op in the register.
with_op(field, op) := d if {
	ops := clean(object.union(data.register.purposes["tf-screening"].datasets["fiu/transactions"].field_ops, {field: op}))
	d := decide(request("voorbeeldbank", "tf-screening", "fiu/transactions", ["iban"])) with data.register.purposes["tf-screening"].datasets["fiu/transactions"].field_ops as ops
}

test_the_bank_gets_only_pseudonyms_and_the_indicator if {
	bank_decision.allow
	bank_decision.field_ops == {"bsn": "pseudonymise", "iban": "pseudonymise", "tf_indicator": "keep"}
	bank_decision.retention_days == 180
}

test_iban_leaves_only_pseudonymised if {
	every op in ["keep", "mask", "mask:2", "generalise:year", "exists"] {
		reasons(with_op("iban", op)) == {concat("", ["purpose tf-screening releases identifier data only pseudonymised (field iban has op ", op, ")"])}
	}
}

test_nothing_but_pseudonyms_and_the_indicator_leaves if {
	cases := [
		["amount_eur", "pseudonymise", "financial"],
		["counterparty_country", "pseudonymise", "financial"],
		["name", "pseudonymise", "identity"],
		["reported_on", "exists", "financial"],
		["reported_on", "generalise:year", "financial"],
		["amount_eur", "keep", "financial"],
		["name", "mask", "identity"],
	]
	every c in cases {
		reasons(with_op(c[0], c[1])) == {concat("", ["purpose tf-screening does not release ", c[2], " data (field ", c[0], " has op ", c[1], ")"])}
	}
}

test_every_offending_field_is_named if {
	ops := object.union(data.register.purposes["tf-screening"].datasets["fiu/transactions"].field_ops, {"amount_eur": "pseudonymise", "iban": "keep", "name": "drop"})
	d := bank_decision with data.register.purposes["tf-screening"].datasets["fiu/transactions"].field_ops as ops
	reasons(d) == {
		"purpose tf-screening does not release financial data (field amount_eur has op pseudonymise)",
		"purpose tf-screening releases identifier data only pseudonymised (field iban has op keep)",
	}
}

test_dropping_anything_and_any_op_on_the_indicator_are_fine if {
	every c in [["amount_eur", "drop"], ["name", "drop"], ["bsn", "drop"], ["tf_indicator", "exists"]] {
		d := with_op(c[0], c[1])
		d.allow
		d.field_ops[c[0]] == c[1]
	}
}

test_it_covers_financial_data_only if {
	# Even a pseudonym tells the bank that its customer is in the IND's records.
	datasets := object.union(data.register.purposes["tf-screening"].datasets, {"ind/residence": {"field_ops": {"bsn": "pseudonymise"}}})
	d := decision("voorbeeldbank", "tf-screening", "ind/residence") with data.register.purposes["tf-screening"].datasets as datasets
	reasons(d) == {"purpose tf-screening only covers financial data; ind/residence is immigration data"}
}

test_a_category_in_two_tiers_gets_the_stricter_rule if {
	# The register loader refuses it; the policy fails closed all the same.
	d := bank_decision with data.register.purposes["tf-screening"].pseudonym_categories as ["identifier", "indicator"]
	reasons(d) == {"purpose tf-screening releases indicator data only pseudonymised (field tf_indicator has op keep)"}
}

test_it_is_not_granted_to_the_police_or_the_fiu if {
	every partner in ["politie", "fiu", "fiod"] {
		reasons(decision(partner, "tf-screening", "fiu/transactions")) == {concat("", ["purpose tf-screening is not granted to ", partner])}
	}
}

test_the_bank_gets_nothing_under_another_purpose if {
	every purpose in ["ct-assessment", "vertrek", "pnr-request"] {
		d := decision("voorbeeldbank", purpose, "fiu/transactions")
		not d.allow
		concat("", ["purpose ", purpose, " is not granted to voorbeeldbank"]) in reasons(d)
	}
}

# A requester's own op (requester_field_ops) is judged by the category rules like the
# grant's: the register cannot give the bank its customers' IBAN in clear that way either.
test_a_requesters_own_op_is_judged_by_the_category_rules if {
	own := {"voorbeeldbank": {"iban": "keep"}}
	d := bank_decision with data.register.purposes["tf-screening"].datasets["fiu/transactions"].requester_field_ops as own
	reasons(d) == {"purpose tf-screening releases identifier data only pseudonymised (field iban has op keep)"}
}
