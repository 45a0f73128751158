# Purpose binding (doelbinding) for disclosures.
#
# Entry point: data.doelpoort.disclosure.decision
#
# The gateway asks this policy once per dataset of a request. The input names who asks
# (requester id and roles), for which purpose, which dataset (its domain, its fields with
# their types and categories, its identity keys), which identity keys the requester gave,
# and whether each fact about the subject the purpose requires holds (subject_facts:
# fact name -> boolean). It never holds identifiers or record values. The purpose
# register (policies/register.yaml) is loaded as data.register.
#
# A decision allows only when no rule in deny.rego objects. Field ops come from the
# register, restricted to the fields the dataset declares; a field no op names is dropped
# by the gateway (default deny per field as well as per request).
package doelpoort.disclosure

import rego.v1

# Fail closed: anything the rules below do not explicitly allow is denied, with a reason
# the requester and the DPO can read.
default decision := {
	"allow": false,
	"reasons": ["no rule of the purpose register allows this disclosure"],
	"field_ops": {},
	"retention_days": 0,
	"legal_basis": "",
}

decision := {
	"allow": true,
	"reasons": [],
	"field_ops": field_ops,
	"retention_days": purpose.retention_days,
	"legal_basis": purpose.legal_basis,
} if {
	count(deny) == 0
	well_formed_input
	grant
}

# A denial still reports the purpose's legal basis, so the audit entry of a refused
# request states under which framework it was refused.
decision := {
	"allow": false,
	"reasons": sort(deny),
	"field_ops": {},
	"retention_days": 0,
	"legal_basis": legal_basis,
} if {
	count(deny) > 0
}

# --- what the register says about this request -----------------------------------------

# The purpose entry; undefined when the purpose is not in the register.
purpose := data.register.purposes[input.purpose]

# The purpose's entry for the requested dataset; undefined when the purpose does not
# name the dataset.
grant := purpose.datasets[input.dataset.id]

default legal_basis := ""

legal_basis := purpose.legal_basis

# The requester holds at least one role the purpose is granted to.
role_granted if {
	some role in input.requester.roles
	role in purpose.requester_roles
}

# A dataset entry may narrow the purpose to named partners (e.g. intelligence signals
# only to the partners the AIVD shares them with). No list: every granted role may ask.
requester_covered if {
	grant
	not grant.requesters
}

requester_covered if {
	input.requester.id in grant.requesters
}

# The grant's ops, with this requester's own where the grant gives it some
# (requester_field_ops: e.g. the NCTV gets no amounts). The rules in deny.rego judge the
# result, so a requester's op can narrow a grant but never slip past a constraint.
grant_ops := object.union(grant.field_ops, object.get(grant, ["requester_field_ops", input.requester.id], {}))

# The op for every field the dataset declares. Ops for fields the dataset does not
# declare are left out: the register cannot conjure a field into a disclosure.
field_ops := object.filter(grant_ops, object.keys(input.dataset.fields))

# The op name without its parameter ("generalise:year" -> "generalise").
op_name(op) := split(op, ":")[0]

# The fields the register releases (any op but drop), each with its category, op and op
# name: worked out once per decision for the category rules in deny.rego.
released[field] := {"category": category, "op": op, "name": name} if {
	some field, op in field_ops
	name := op_name(op)
	name != "drop"
	category := input.dataset.fields[field].category
}

# Ops (by name) the category allow-list permits for a reduced and a pseudonym category
# (deny.rego). A clear category may have any op; an unlisted one only drop.
reduced_ops := {"pseudonymise", "mask", "generalise", "drop"}

pseudonym_ops := {"pseudonymise", "drop"}

# The purpose's category lists as sets; empty when the register does not give one (the
# loader spells an absent list as null, so is_array tells "not given" from []).
clear_categories := listed(purpose.clear_categories)

reduced_categories := listed(purpose.reduced_categories)

pseudonym_categories := listed(purpose.pseudonym_categories)

listed_categories := (clear_categories | reduced_categories) | pseudonym_categories

listed(list) := {name | some name in list} if is_array(list)

default listed(_) := set()

# The purpose gives a category allow-list: any of its three lists switches it on.
lists_categories if is_array(purpose.clear_categories)

lists_categories if is_array(purpose.reduced_categories)

lists_categories if is_array(purpose.pseudonym_categories)

# "a", "a and b", "a, b and c" — for reasons. concat() only (see deny.rego). Defined for
# every list, so a reason built from it can never be undefined (which would allow).
and_list(names) := "no" if count(names) == 0

and_list(names) := names[0] if count(names) == 1

and_list(names) := concat("", [
	concat(", ", array.slice(names, 0, count(names) - 1)),
	" and ", names[count(names) - 1],
]) if {
	count(names) > 1
}

# At least one of the dataset's identity keys is fully covered by the key names the
# requester gave. Without one the provider cannot find the subject unambiguously, and a
# partial key (a name without a date of birth) invites a fishing expedition.
identity_key_given if {
	some key in input.dataset.identity_keys
	count(key) > 0
	every part in key {
		part in input.subject_keys
	}
}

# The shape the gateway's input builder guarantees. Rules above read these values; a
# missing one would make a rule undefined, and an undefined deny rule would allow.
well_formed_input if {
	is_string(input.action)
	is_string(input.purpose)
	is_string(input.requester.id)
	is_array(input.requester.roles)
	is_boolean(input.has_justification)
	is_string(input.dataset.id)
	is_string(input.dataset.domain)
	is_object(input.dataset.fields)
	every _, spec in input.dataset.fields {
		is_string(spec.type)
		is_string(spec.category)
	}
	is_array(input.dataset.identity_keys)
	is_array(input.subject_keys)
	is_object(input.subject_facts)
	every _, holds in input.subject_facts {
		is_boolean(holds)
	}
}

# Every fact about the subject the purpose requires holds. The gateway fetched each from
# the dataset that declares it; the input says only true or false, never the value.
subject_eligible if {
	every fact in purpose.requires_facts {
		input.subject_facts[fact] == true
	}
}
