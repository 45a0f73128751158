# vertrek: departure of terrorism convicts without lawful residence (LAOV). Not a security
# purpose: immigration and detention data only, never intelligence, police, criminal or
# financial data, whatever a register edit says; and only for a subject without lawful
# residence.
package doelpoort.vertrek_test

import rego.v1

import data.doelpoort.test_support.decide
import data.doelpoort.test_support.decision
import data.doelpoort.test_support.domain_of
import data.doelpoort.test_support.holding
import data.doelpoort.test_support.reasons
import data.doelpoort.test_support.request

# Expected reasons are built with concat(), not sprintf(): regopy's sprintf() quotes a
# string it is given from a lookup ("purpose vertrek excludes \"police\" data").

security_datasets := ["aivd/ct-signals", "politie/incidents", "fiu/transactions"]

only_immigration_and_detention := "purpose vertrek only covers immigration and detention data"

test_the_laov_partners_are_dji_dtv_ind_and_kmar if {
	holding("laov") == {"dji", "dtv", "ind", "kmar"}
}

test_dtv_gets_detention_data_in_clear if {
	d := decide(request("dtv", "vertrek", "dji/detention", ["v_number"]))
	d.allow
	d.field_ops == {"v_number": "keep", "name": "keep", "facility": "keep", "expected_release": "keep"}
	d.retention_days == 730
}

test_dtv_gets_residence_data_in_clear if {
	d := decide(request("dtv", "vertrek", "ind/residence", ["v_number"]))
	d.allow
	d.field_ops == {
		"v_number": "keep",
		"name": "keep",
		"date_of_birth": "keep",
		"nationality": "keep",
		"residence_status": "keep",
		"lawful_residence": "keep",
		"status_since": "keep",
	}
}

test_the_conviction_type_and_the_bsn_never_leave if {
	d := decide(request("dtv", "vertrek", "dji/detention", ["v_number"]))
	not "conviction_type" in object.keys(d.field_ops)
	not "bsn" in object.keys(d.field_ops)
}

test_vertrek_never_releases_intelligence_police_or_financial_data if {
	pairs := [[partner, dataset] | partner := ["dji", "dtv", "ind", "kmar"][_]; dataset := security_datasets[_]]
	every pair in pairs {
		d := decision(pair[0], "vertrek", pair[1])
		not d.allow
		domain := domain_of(pair[1])
		concat("", ["purpose vertrek excludes ", domain, " data"]) in reasons(d)
	}
}

test_a_register_edit_cannot_widen_vertrek_to_security_datasets if {
	widened := object.union(data.register.purposes.vertrek.datasets, {
		"aivd/ct-signals": {"field_ops": {"bsn": "keep", "name": "keep"}},
		"fiu/transactions": {"field_ops": {"bsn": "pseudonymise"}},
		"politie/incidents": {"field_ops": {"name": "keep"}},
	})
	every dataset in security_datasets {
		d := decision("dtv", "vertrek", dataset) with data.register.purposes.vertrek.datasets as widened
		domain := domain_of(dataset)

		# Both the allow-list and the deny-list (defence in depth) object.
		reasons(d) == {
			concat("", ["purpose vertrek excludes ", domain, " data"]),
			concat("", [only_immigration_and_detention, "; ", dataset, " is ", domain, " data"]),
		}
	}
}

test_a_register_edit_cannot_add_kmar_security_data_to_vertrek if {
	widened := object.union(data.register.purposes.vertrek.datasets, {
		"kmar/passenger-records": {"field_ops": {"name": "keep", "route": "keep", "flight_no": "keep"}},
		"kmar/border-crossings": {"field_ops": {"name": "keep", "crossed_at": "keep", "border_post": "keep"}},
	})
	every dataset in ["kmar/passenger-records", "kmar/border-crossings"] {
		d := decide(request("kmar", "vertrek", dataset, ["passport_no"])) with data.register.purposes.vertrek.datasets as widened
		domain := domain_of(dataset)
		reasons(d) == {concat("", [only_immigration_and_detention, "; ", dataset, " is ", domain, " data"])}
	}
}

test_the_deny_list_holds_when_the_allow_list_is_widened if {
	domains := ["immigration", "detention", "intelligence", "police", "financial"]
	datasets := object.union(data.register.purposes.vertrek.datasets, {"politie/incidents": {"field_ops": {"offence_category": "keep"}}})
	d := decision("dtv", "vertrek", "politie/incidents") with data.register.purposes.vertrek.allowed_domains as domains
		with data.register.purposes.vertrek.datasets as datasets
	reasons(d) == {
		"purpose vertrek excludes criminal data (field offence_category)",
		"purpose vertrek excludes police data",
	}
}

test_a_register_edit_cannot_add_a_criminal_field if {
	every op in ["keep", "pseudonymise", "exists"] {
		ops := object.union(data.register.purposes.vertrek.datasets["dji/detention"].field_ops, {"conviction_type": op})
		d := decide(request("dtv", "vertrek", "dji/detention", ["v_number"])) with data.register.purposes.vertrek.datasets["dji/detention"].field_ops as ops
		reasons(d) == {"purpose vertrek excludes criminal data (field conviction_type)"}
	}
}

test_dropping_an_excluded_field_explicitly_is_fine if {
	ops := object.union(data.register.purposes.vertrek.datasets["dji/detention"].field_ops, {"conviction_type": "drop"})
	d := decide(request("dtv", "vertrek", "dji/detention", ["v_number"])) with data.register.purposes.vertrek.datasets["dji/detention"].field_ops as ops
	d.allow
	d.field_ops.conviction_type == "drop"
}

test_an_empty_domain_allow_list_refuses_everything if {
	# The register loader refuses an empty list; the policy fails closed all the same.
	d := decision("dtv", "vertrek", "ind/residence") with data.register.purposes.vertrek.allowed_domains as []
	reasons(d) == {"purpose vertrek only covers no data; ind/residence is immigration data"}
}

test_the_allow_list_reason_is_not_given_to_a_partner_without_the_purpose if {
	d := decide(request("voorbeeldbank", "vertrek", "kmar/passenger-records", ["passport_no"]))
	reasons(d) == {"purpose vertrek is not granted to voorbeeldbank"}
}

test_it_is_not_granted_to_ct_infobox_only_partners if {
	every partner in ["aivd", "nctv", "politie", "om", "fiod", "fiu"] {
		reasons(decision(partner, "vertrek", "ind/residence")) == {sprintf("purpose vertrek is not granted to %s", [partner])}
	}
}

# vertrek requires the fact no_lawful_residence, so a
# lawful resident is refused, with the reason an unknown subject gets.
test_vertrek_refuses_a_subject_with_lawful_residence if {
	base := request("kmar", "vertrek", "ind/residence", ["bsn"])
	lawful := decide(object.union(base, {"subject_facts": {"no_lawful_residence": false}}))
	not lawful.allow
	unknown := decide(object.union(base, {"subject_facts": {}}))
	not unknown.allow
	reasons(lawful) == reasons(unknown)
}

test_vertrek_allows_a_subject_without_lawful_residence if {
	base := request("kmar", "vertrek", "ind/residence", ["bsn"])
	d := decide(object.union(base, {"subject_facts": {"no_lawful_residence": true}}))
	d.allow
	d.field_ops.name == "keep"
}
