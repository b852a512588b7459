//! Where the running kernel keeps what programs read of the current task with loads from its
//! BTF pointer instead of helper calls: `task_struct.comm`, `pid`, `tgid` and `cred->uid`.
//! `btf::read` feeds every type record to a [`Collector`] as it walks them; the members are
//! checked once the walk is over, since a member's type may come after its struct.
//!
//! A helper call costs a probe far more than a load (each return pays the kernel's
//! return-stack mitigation on affected CPUs: ~50–80 ns a call measured here), so every name
//! or id a program can load is one call fewer on the traced task's path.

use std::collections::HashMap;

use super::{
    KIND_ARRAY, KIND_CONST, KIND_INT, KIND_PTR, KIND_RESTRICT, KIND_STRUCT, KIND_TYPEDEF,
    KIND_TYPE_TAG, KIND_VOLATILE, TASK_COMM_LEN,
};

/// Byte offsets of the current task's ids, for loads from `bpf_get_current_task_btf()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskIds {
    /// `task_struct.pid` (the thread id), a 4-byte integer.
    pub pid: u32,
    /// `task_struct.tgid` (the process id), a 4-byte integer.
    pub tgid: u32,
    /// `task_struct.cred`, a pointer to `struct cred`.
    pub cred: u32,
    /// `cred.uid`, a 4-byte `kuid_t`: the value `bpf_get_current_uid_gid` returns in the
    /// initial user namespace, where `from_kuid` is the identity.
    pub cred_uid: u32,
}

/// The structs whose members are looked at, and the members.
const TASK_MEMBERS: [&str; 4] = ["comm", "pid", "tgid", "cred"];
const CRED_MEMBERS: [&str; 1] = ["uid"];

/// What the walk saw: each type's kind and size-or-type word, array lengths, and the wanted
/// members of the first `task_struct` and `cred` as (byte offset, type id).
#[derive(Default)]
pub(super) struct Collector {
    types: Vec<(u32, u32)>,
    arrays: HashMap<u32, u32>,
    task: Option<HashMap<&'static str, (u32, u32)>>,
    cred: Option<(u32, HashMap<&'static str, (u32, u32)>)>,
}

impl Collector {
    /// Type `id` (ids are dense from 1) has `kind` and its record's third word `word`.
    pub(super) fn ty(&mut self, id: u32, kind: u32, word: u32) {
        debug_assert_eq!(id as usize, self.types.len() + 1);
        self.types.push((kind, word));
    }

    pub(super) fn array(&mut self, id: u32, nelems: u32) {
        self.arrays.insert(id, nelems);
    }

    /// Does the walk want the members of the struct `name`?
    pub(super) fn wants(&self, name: &str) -> bool {
        match name {
            "task_struct" => self.task.is_none(),
            "cred" => self.cred.is_none(),
            _ => false,
        }
    }

    /// The members of struct `name` (type `id`) as (name, type id, bit offset).
    pub(super) fn members<'a>(
        &mut self,
        name: &str,
        id: u32,
        members: impl Iterator<Item = (&'a str, u32, u32)>,
    ) {
        let wanted: &[&'static str] = if name == "cred" {
            &CRED_MEMBERS
        } else {
            &TASK_MEMBERS
        };
        let mut got = HashMap::new();
        for (member, ty, bits) in members {
            if let Some(w) = wanted.iter().find(|w| **w == member) {
                // A bitfield or a member not on a byte cannot be loaded as it is.
                if bits % 8 == 0 {
                    got.insert(*w, (bits / 8, ty));
                }
            }
        }
        if name == "cred" {
            self.cred = Some((id, got));
        } else {
            self.task = Some(got);
        }
    }

    /// The type `id` stands for once typedefs, qualifiers and type tags are looked through:
    /// (its id, kind, size-or-type word).
    fn resolve(&self, mut id: u32) -> Option<(u32, u32, u32)> {
        // Bounded: a garbled chain of typedefs must not loop.
        for _ in 0..32 {
            let &(kind, word) = self.types.get((id as usize).checked_sub(1)?)?;
            match kind {
                KIND_TYPEDEF | KIND_CONST | KIND_VOLATILE | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = word
                }
                _ => return Some((id, kind, word)),
            }
        }
        None
    }

    /// A 4-byte integer, or a 4-byte struct around one (`kuid_t`).
    fn is_word(&self, ty: u32) -> bool {
        matches!(self.resolve(ty), Some((_, KIND_INT | KIND_STRUCT, 4)))
    }

    /// `task_struct.comm`'s offset, and the task's ids, each where the kernel has them as
    /// expected and every load reaches them with an instruction's i16 offset.
    pub(super) fn finish(self) -> (Option<u32>, Option<TaskIds>) {
        let reach = |off: u32, len: u32| off + len <= i16::MAX as u32 + 1;
        let Some(task) = &self.task else {
            return (None, None);
        };
        let comm = task
            .get("comm")
            .filter(|(off, ty)| {
                self.arrays.get(ty) == Some(&TASK_COMM_LEN)
                    && self.resolve(*ty).is_some_and(|(_, k, _)| k == KIND_ARRAY)
                    && reach(*off, TASK_COMM_LEN)
            })
            .map(|(off, _)| *off);
        let word = |m: Option<&(u32, u32)>| {
            m.filter(|(off, ty)| self.is_word(*ty) && reach(*off, 4))
                .map(|(off, _)| *off)
        };
        let cred = task.get("cred").and_then(|&(off, ty)| {
            let (_, kind, target) = self.resolve(ty)?;
            let (target, ..) = self.resolve(target)?;
            let (cred_id, members) = self.cred.as_ref()?;
            (kind == KIND_PTR && target == *cred_id && reach(off, 8)).then_some(off)?;
            Some((off, word(members.get("uid"))?))
        });
        let ids = (|| {
            let (cred, cred_uid) = cred?;
            Some(TaskIds {
                pid: word(task.get("pid"))?,
                tgid: word(task.get("tgid"))?,
                cred,
                cred_uid,
            })
        })();
        (comm, ids)
    }
}
