//! The types the target descriptions define for their registers: EFLAGS' and MXCSR's bits, the
//! views of an XMM register, and the named bits of CR0, CR4 and EFER. The 16/32-bit description
//! ([`super::arch`]) and the 64-bit one ([`super::tdesc64`]) both use them.

#![forbid(unsafe_code)]

use crate::x86::control_bits::{CR0, CR4, EFER};
use core::fmt::Write as _;

/// Type definitions of the `org.gnu.gdb.i386.core` feature (EFLAGS bits).
pub const CORE_TYPES: &str = r#"    <flags id="i386_eflags" size="4">
      <field name="CF" start="0" end="0"/>
      <field name="" start="1" end="1"/>
      <field name="PF" start="2" end="2"/>
      <field name="AF" start="4" end="4"/>
      <field name="ZF" start="6" end="6"/>
      <field name="SF" start="7" end="7"/>
      <field name="TF" start="8" end="8"/>
      <field name="IF" start="9" end="9"/>
      <field name="DF" start="10" end="10"/>
      <field name="OF" start="11" end="11"/>
      <field name="NT" start="14" end="14"/>
      <field name="RF" start="16" end="16"/>
      <field name="VM" start="17" end="17"/>
      <field name="AC" start="18" end="18"/>
      <field name="VIF" start="19" end="19"/>
      <field name="VIP" start="20" end="20"/>
      <field name="ID" start="21" end="21"/>
    </flags>
"#;

/// Type definitions of the `org.gnu.gdb.i386.sse` feature: the ways an XMM
/// register can be viewed, and the MXCSR bits.
pub const SSE_TYPES: &str = r#"    <vector id="v4f" type="ieee_single" count="4"/>
    <vector id="v2d" type="ieee_double" count="2"/>
    <vector id="v16i8" type="int8" count="16"/>
    <vector id="v8i16" type="int16" count="8"/>
    <vector id="v4i32" type="int32" count="4"/>
    <vector id="v2i64" type="int64" count="2"/>
    <union id="vec128">
      <field name="v4_float" type="v4f"/>
      <field name="v2_double" type="v2d"/>
      <field name="v16_int8" type="v16i8"/>
      <field name="v8_int16" type="v8i16"/>
      <field name="v4_int32" type="v4i32"/>
      <field name="v2_int64" type="v2i64"/>
      <field name="uint128" type="uint128"/>
    </union>
    <flags id="i386_mxcsr" size="4">
      <field name="IE" start="0" end="0"/>
      <field name="DE" start="1" end="1"/>
      <field name="ZE" start="2" end="2"/>
      <field name="OE" start="3" end="3"/>
      <field name="UE" start="4" end="4"/>
      <field name="PE" start="5" end="5"/>
      <field name="DAZ" start="6" end="6"/>
      <field name="IM" start="7" end="7"/>
      <field name="DM" start="8" end="8"/>
      <field name="ZM" start="9" end="9"/>
      <field name="OM" start="10" end="10"/>
      <field name="UM" start="11" end="11"/>
      <field name="PM" start="12" end="12"/>
      <field name="FZ" start="15" end="15"/>
    </flags>
"#;

/// Type definitions of our `org.minikvm.sys` feature: named bits for CR0,
/// CR4 and EFER, so `info registers cr0` prints e.g. `[ PE ET PG ]`. The
/// names come from the one table of them, [`crate::x86::control_bits`].
pub fn sys_types() -> String {
    let mut xml = String::new();
    for (id, table) in [("minikvm_cr0", CR0), ("minikvm_cr4", CR4), ("minikvm_efer", EFER)] {
        let _ = writeln!(xml, "    <flags id=\"{id}\" size=\"8\">");
        for b in table {
            let _ = writeln!(xml, "      <field name=\"{}\" start=\"{}\" end=\"{}\"/>", b.name, b.bit, b.bit);
        }
        xml.push_str("    </flags>\n");
    }
    xml
}
