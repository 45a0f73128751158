# ct-assessment: the CT Infobox's multidisciplinary assessment. Every CT Infobox partner
# may ask; intelligence and financial signals only go to the partners their grants name;
# special categories never leave.
package doelpoort.ct_assessment_test

import rego.v1

import data.doelpoort.test_support.decision
import data.doelpoort.test_support.reasons
import data.doelpoort.test_support.register_ops

test_politie_gets_ind_residence_with_the_registers_ops if {
	d := decision("politie", "ct-assessment", "ind/residence")
	d.allow
	d.field_ops == {
		"bsn": "pseudonymise",
		"v_number": "pseudonymise",
		"name": "pseudonymise",
		"date_of_birth": "generalise:year",
		"nationality": "keep",
		"address": "generalise:municipality",
		"residence_status": "keep",
		"lawful_residence": "keep",
	}
	d.retention_days == 365
}

test_every_ct_infobox_partner_gets_the_datasets_open_to_all if {
	partners := ["aivd", "fiod", "fiu", "ind", "kmar", "nctv", "om", "politie"]
	datasets := ["ind/residence", "kmar/border-crossings", "politie/incidents"]

	# Pairs, not nested `every`: regopy 1.5 does not evaluate nested `every` correctly.
	pairs := [[partner, dataset] | partner := partners[_]; dataset := datasets[_]]
	count(pairs) == 24
	every pair in pairs {
		d := decision(pair[0], "ct-assessment", pair[1])
		d.allow
		d.field_ops == register_ops("ct-assessment", pair[1])
	}
}

test_identifiers_leave_pseudonymised_and_birth_dates_as_a_year if {
	every dataset in ["ind/residence", "kmar/border-crossings", "politie/incidents", "aivd/ct-signals", "fiu/transactions"] {
		d := decision("politie", "ct-assessment", dataset)
		d.field_ops.bsn == "pseudonymise"
		object.get(d.field_ops, "date_of_birth", "generalise:year") == "generalise:year"
	}
}

test_intelligence_signals_go_only_to_the_partners_the_grant_names if {
	every partner in ["aivd", "nctv", "politie", "om"] {
		d := decision(partner, "ct-assessment", "aivd/ct-signals")
		d.allow
		d.field_ops == {"bsn": "pseudonymise", "name": "pseudonymise", "threat_level": "keep", "assessed_on": "generalise:month"}
	}
	every partner in ["fiod", "fiu", "ind", "kmar"] {
		reasons(decision(partner, "ct-assessment", "aivd/ct-signals")) == {sprintf("purpose ct-assessment does not cover aivd/ct-signals for %s", [partner])}
	}
}

test_the_aivds_summary_and_ideology_never_leave if {
	d := decision("aivd", "ct-assessment", "aivd/ct-signals")
	not "summary" in object.keys(d.field_ops)
	not "ideology" in object.keys(d.field_ops)
}

test_financial_signals_go_only_to_the_partners_the_grant_names if {
	every partner in ["fiod", "politie", "aivd", "nctv", "om"] {
		decision(partner, "ct-assessment", "fiu/transactions").allow
	}
	every partner in ["fiu", "ind", "kmar"] {
		reasons(decision(partner, "ct-assessment", "fiu/transactions")) == {sprintf("purpose ct-assessment does not cover fiu/transactions for %s", [partner])}
	}
}

test_a_dataset_the_purpose_does_not_name_is_refused if {
	reasons(decision("politie", "ct-assessment", "dji/detention")) == {"purpose ct-assessment does not cover dji/detention for politie"}
	reasons(decision("politie", "ct-assessment", "kmar/passenger-records")) == {"purpose ct-assessment does not cover kmar/passenger-records for politie"}
}

test_it_is_not_granted_to_a_partner_without_the_ct_infobox_role if {
	every partner in ["voorbeeldbank", "dji", "dtv"] {
		reasons(decision(partner, "ct-assessment", "ind/residence")) == {sprintf("purpose ct-assessment is not granted to %s", [partner])}
	}
}

test_a_register_edit_cannot_release_special_category_data if {
	every op in ["keep", "pseudonymise", "mask", "exists"] {
		ops := object.union(register_ops("ct-assessment", "aivd/ct-signals"), {"ideology": op})
		d := decision("aivd", "ct-assessment", "aivd/ct-signals") with data.register.purposes["ct-assessment"].datasets["aivd/ct-signals"].field_ops as ops
		reasons(d) == {"purpose ct-assessment excludes special-category data (field ideology)"}
	}
}

# the register gives the NCTV amount_eur: drop for FIU
# transactions (requester_field_ops), so the NCTV sees no amounts.
test_the_nctv_gets_no_amounts if {
	d := decision("nctv", "ct-assessment", "fiu/transactions")
	d.allow
	d.field_ops.amount_eur == "drop"
	decision("politie", "ct-assessment", "fiu/transactions").field_ops.amount_eur == "keep"
}
