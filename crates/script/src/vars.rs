//! Script variable storage: `$var` slots (per worker), AVP and XAVP stacks (per message, then
//! per transaction), `$shv` slots (shared by all workers).

use crate::value::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// An interned AVP name. Ids are given out by [`AvpNames`]; the compile step turns every
/// `$avp(name)` into one, so run time never compares names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AvpId(pub u32);

/// The table of AVP names, shared by the compile step and the modules that name AVPs in
/// their parameters (tm's `contacts_avp`, dialog's `timeout_avp`...).
#[derive(Debug, Clone, Default)]
pub struct AvpNames {
    inner: Arc<Mutex<AvpNamesInner>>,
}

#[derive(Debug, Default)]
struct AvpNamesInner {
    names: Vec<String>,
    ids: HashMap<String, AvpId>,
}

impl AvpNames {
    /// The id of `name`, given out on first use. `s:name` and `name` are the same AVP;
    /// `i:5` keeps its prefix (integer-named AVPs are a separate space in Kamailio).
    pub fn id(&self, name: &str) -> AvpId {
        let name = name.strip_prefix("s:").unwrap_or(name);
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(id) = inner.ids.get(name) {
            return *id;
        }
        let id = AvpId(u32::try_from(inner.names.len()).unwrap_or(u32::MAX));
        inner.names.push(name.to_owned());
        inner.ids.insert(name.to_owned(), id);
        id
    }

    /// The name of an id.
    pub fn name(&self, id: AvpId) -> Option<String> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.names.get(id.0 as usize).cloned()
    }
}

/// The AVPs of a message (and later of its transaction): per name, a stack of values, the
/// newest on top.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AvpStore {
    /// Oldest first; a name's top value is its last entry.
    items: Vec<(AvpId, Value)>,
}

impl AvpStore {
    pub fn new() -> Self {
        AvpStore::default()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The top value of `id`.
    pub fn get(&self, id: AvpId) -> Option<&Value> {
        self.items
            .iter()
            .rev()
            .find(|(i, _)| *i == id)
            .map(|(_, v)| v)
    }

    /// The value `n` places below the top (0 is the top); negative counts from the bottom
    /// (-1 is the oldest).
    pub fn get_at(&self, id: AvpId, n: i64) -> Option<&Value> {
        let mut values = self.items.iter().rev().filter(|(i, _)| *i == id);
        if n >= 0 {
            values.nth(usize::try_from(n).ok()?).map(|(_, v)| v)
        } else {
            let all: Vec<&Value> = values.map(|(_, v)| v).collect();
            let back = usize::try_from(n.unsigned_abs()).ok()?;
            all.len()
                .checked_sub(back)
                .and_then(|k| all.get(k).copied())
        }
    }

    /// Every value of `id`, top first.
    pub fn all(&self, id: AvpId) -> impl Iterator<Item = &Value> + '_ {
        self.items
            .iter()
            .rev()
            .filter(move |(i, _)| *i == id)
            .map(|(_, v)| v)
    }

    /// How many values `id` has.
    pub fn count(&self, id: AvpId) -> usize {
        self.items.iter().filter(|(i, _)| *i == id).count()
    }

    /// Pushes a new top value.
    pub fn push(&mut self, id: AvpId, value: Value) {
        self.items.push((id, value));
    }

    /// Removes the top value of `id`.
    pub fn remove_top(&mut self, id: AvpId) {
        if let Some(k) = self.items.iter().rposition(|(i, _)| *i == id) {
            self.items.remove(k);
        }
    }

    /// Removes the value `n` places below the top.
    pub fn remove_at(&mut self, id: AvpId, n: usize) {
        let pos = self
            .items
            .iter()
            .enumerate()
            .rev()
            .filter(|(_, (i, _))| *i == id)
            .nth(n)
            .map(|(k, _)| k);
        if let Some(k) = pos {
            self.items.remove(k);
        }
    }

    /// Removes every value of `id`.
    pub fn remove_all(&mut self, id: AvpId) {
        self.items.retain(|(i, _)| *i != id);
    }

    /// Replaces the value `n` places below the top; false when there is none.
    pub fn set_at(&mut self, id: AvpId, n: usize, value: Value) -> bool {
        let slot = self.items.iter_mut().rev().filter(|(i, _)| *i == id).nth(n);
        match slot {
            Some((_, v)) => {
                *v = value;
                true
            }
            None => false,
        }
    }

    /// Removes everything.
    pub fn clear(&mut self) {
        self.items.clear();
    }
}

/// One XAVP item: named fields, each a stack of values (top first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XavpItem {
    pub fields: Vec<(String, Vec<Value>)>,
}

impl XavpItem {
    pub fn field(&self, name: &str) -> Option<&Vec<Value>> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The values of field `name`, created empty when missing.
    fn field_mut(&mut self, name: &str) -> Option<&mut Vec<Value>> {
        if !self.fields.iter().any(|(n, _)| n == name) {
            self.fields.push((name.to_owned(), Vec::new()));
        }
        self.fields
            .iter_mut()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }
}

/// The XAVPs of a message: per root name, a stack of items (top first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XavpStore {
    roots: Vec<(String, Vec<XavpItem>)>,
}

impl XavpStore {
    pub fn new() -> Self {
        XavpStore::default()
    }

    /// The item `index` of root `name` (0 is the top).
    pub fn item(&self, name: &str, index: usize) -> Option<&XavpItem> {
        self.roots
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, items)| items.get(index))
    }

    /// How many items root `name` has.
    pub fn count(&self, name: &str) -> usize {
        self.roots
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, items)| items.len())
    }

    /// The items of root `name`, created empty when missing.
    fn items_mut(&mut self, name: &str) -> Option<&mut Vec<XavpItem>> {
        if !self.roots.iter().any(|(n, _)| n == name) {
            self.roots.push((name.to_owned(), Vec::new()));
        }
        self.roots
            .iter_mut()
            .find(|(n, _)| n == name)
            .map(|(_, items)| items)
    }

    /// `$xavp(name=>field) = value`: a new item on top holding the field.
    pub fn push_item(&mut self, name: &str, field: &str, value: Value) {
        let item = XavpItem {
            fields: vec![(field.to_owned(), vec![value])],
        };
        if let Some(items) = self.items_mut(name) {
            items.insert(0, item);
        }
    }

    /// `$xavp(name[index]=>field) = value`: the value goes on top of the field in an
    /// existing item; false when the item does not exist.
    pub fn set_field(&mut self, name: &str, index: usize, field: &str, value: Value) -> bool {
        match self
            .items_mut(name)
            .and_then(|items| items.get_mut(index))
            .and_then(|item| item.field_mut(field))
        {
            Some(values) => {
                values.insert(0, value);
                true
            }
            None => false,
        }
    }

    /// Removes item `index` of root `name`.
    pub fn remove_item(&mut self, name: &str, index: usize) {
        if let Some(items) = self.items_mut(name) {
            if index < items.len() {
                items.remove(index);
            }
        }
    }

    /// Removes every item of root `name`.
    pub fn remove_root(&mut self, name: &str) {
        self.roots.retain(|(n, _)| n != name);
    }

    /// Removes the top value of a field of an item.
    pub fn remove_field_top(&mut self, name: &str, index: usize, field: &str) {
        if let Some(item) = self.items_mut(name).and_then(|items| items.get_mut(index)) {
            if let Some((_, values)) = item.fields.iter_mut().find(|(n, _)| n == field) {
                if !values.is_empty() {
                    values.remove(0);
                }
            }
        }
    }

    pub fn clear(&mut self) {
        self.roots.clear();
    }
}

/// `$shv` values, one set for the whole server (shared by every worker and the RPC).
#[derive(Debug, Default)]
pub struct SharedVars {
    entries: Mutex<Vec<(String, Value)>>,
}

impl SharedVars {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, Value)>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The slot of `name`, created (with value 0) on first use.
    pub fn slot(&self, name: &str) -> usize {
        let mut entries = self.lock();
        if let Some(k) = entries.iter().position(|(n, _)| n == name) {
            return k;
        }
        entries.push((name.to_owned(), Value::Int(0)));
        entries.len() - 1
    }

    pub fn get(&self, slot: usize) -> Value {
        self.lock()
            .get(slot)
            .map_or(Value::Null, |(_, v)| v.clone())
    }

    pub fn set(&self, slot: usize, value: Value) {
        if let Some((_, v)) = self.lock().get_mut(slot) {
            *v = value;
        }
    }

    /// Every `$shv` name with its value (RPC `pv.shvGet`).
    pub fn snapshot(&self) -> Vec<(String, Value)> {
        self.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avp_is_a_stack() {
        let names = AvpNames::default();
        let a = names.id("a");
        assert_eq!(names.id("s:a"), a);
        let b = names.id("b");
        let mut s = AvpStore::new();
        s.push(a, Value::Int(1));
        s.push(b, Value::from("x"));
        s.push(a, Value::Int(2));
        assert_eq!(s.get(a), Some(&Value::Int(2)));
        assert_eq!(s.get_at(a, 1), Some(&Value::Int(1)));
        assert_eq!(s.get_at(a, -1), Some(&Value::Int(1)));
        assert_eq!(s.get_at(a, 2), None);
        assert_eq!(
            s.all(a).cloned().collect::<Vec<_>>(),
            [Value::Int(2), Value::Int(1)]
        );
        s.remove_top(a);
        assert_eq!(s.get(a), Some(&Value::Int(1)));
        s.remove_all(a);
        assert_eq!(s.get(a), None);
        assert_eq!(s.get(b), Some(&Value::from("x")));
    }

    #[test]
    fn xavp_items_and_fields() {
        // $xavp(x=>a)=1; $xavp(x[0]=>b)=2; $xavp(x=>a)=3
        let mut x = XavpStore::new();
        x.push_item("x", "a", Value::Int(1));
        assert!(x.set_field("x", 0, "b", Value::Int(2)));
        x.push_item("x", "a", Value::Int(3));
        assert_eq!(
            x.item("x", 0).and_then(|i| i.field("a")),
            Some(&vec![Value::Int(3)])
        );
        assert_eq!(
            x.item("x", 1).and_then(|i| i.field("a")),
            Some(&vec![Value::Int(1)])
        );
        assert_eq!(
            x.item("x", 1).and_then(|i| i.field("b")),
            Some(&vec![Value::Int(2)])
        );
        assert_eq!(x.count("x"), 2);
        assert!(!x.set_field("y", 0, "a", Value::Null));
    }
}
