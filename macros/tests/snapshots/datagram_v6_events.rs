// Input:
// #[wsk_endpoint(kind = "datagram", addr = "[::]:53", dual_stack, events(receive))]
// pub struct Dns;
//
// Output (WSK_BLESS=1 cargo test -p wsk-macros to update):

pub struct Dns;
const _: () = {
    static __WSK_CONFIG: ::wsk::__private::Config = ::wsk::__private::Config {
        name: "Dns",
        addr: ::wsk::__private::SocketAddr::from_sockaddr_in6_bytes([
            23u8, 0u8, 0u8, 53u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8,
            0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8,
        ]),
        remote: ::core::option::Option::None,
        max_connections: 0u32,
        exclusive: false,
        v6only: ::core::option::Option::Some(false),
        events: ::wsk::__private::Events {
            accept: false,
            receive: true,
            disconnect: false,
        },
    };
    #[automatically_derived]
    impl ::wsk::Endpoint for Dns {
        fn config(&self) -> &'static ::wsk::__private::Config {
            &__WSK_CONFIG
        }
        fn start_with(
            &'static self,
            __wsk_rt: &'static ::wsk::Runtime,
            __wsk_addr: ::core::option::Option<::wsk::SocketAddr>,
        ) -> ::wsk::Result<()> {
            ::wsk::__private::start::<
                ::wsk::__private::kind::Datagram,
                Self,
            >(self, __wsk_rt, &__WSK_CONFIG, __wsk_addr)
        }
    }
};
